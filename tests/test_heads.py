"""Head discovery and verification (cam_tutorial.anymodel.heads), without hooks or an extractor."""

import pytest
import torch
from torch import nn

from cam_tutorial.anymodel.heads import (
    choose_feature_layer,
    could_be_features,
    find_classifier,
    head_problem,
    match_head,
)
from cam_tutorial.cam import CAMNotApplicableError
from cam_tutorial.models import ResNet18B


def _gap_net(out=3):
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, out))


def test_the_classifier_of_a_plain_gap_net_is_its_linear():
    model = _gap_net()
    assert find_classifier(model) is model[3]


def test_an_mlp_head_is_refused_from_its_structure():
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)))
    assert "Linear -> ReLU -> Linear" in head_problem(model, model[3][2])
    with pytest.raises(CAMNotApplicableError, match="not global pooling followed by one linear layer"):
        find_classifier(model)


def test_the_book_models_name_their_feature_layer():
    from cam_tutorial.anymodel.extractor import CAMExtractor

    model = ResNet18B(num_classes=3, width=4).eval()
    assert CAMExtractor(model).target_layer is model.features
    assert CAMExtractor(_gap_net().eval()).target_layer is None


@pytest.mark.parametrize("pooling", ["avg", "max"])
def test_match_finds_the_pooling_that_reproduces_the_logits(pooling):
    fc = nn.Linear(4, 3)
    f = torch.rand(2, 4, 5, 5)
    pooled = f.mean(dim=(2, 3)) if pooling == "avg" else f.amax(dim=(2, 3))
    assert match_head(f, fc(pooled), fc) == (pooling, "none")
    assert match_head(f, fc(pooled) + 1.0, fc) is None


def test_choose_names_the_layers_when_the_identity_fails():
    fc = nn.Linear(4, 3)
    f = torch.rand(2, 4, 5, 5)
    with pytest.raises(CAMNotApplicableError, match="'trunk' followed by 'head'"):
        choose_feature_layer([("trunk", f)], torch.zeros(2, 3) + 5.0, fc, "head")
    with pytest.raises(CAMNotApplicableError, match=r"takes 4 channels.*'trunk' outputs shape \(2, 6, 5, 5\)"):
        choose_feature_layer([("trunk", torch.rand(2, 6, 5, 5))], torch.zeros(2, 3), fc, "head")
    assert could_be_features(f, 4) and not could_be_features(f[:, :, :1, :1], 4)


def test_choose_takes_the_last_output_that_verifies():
    fc = nn.Linear(4, 3)
    early, late = torch.rand(1, 4, 6, 6), torch.rand(1, 4, 3, 3)
    logits = fc(late.mean(dim=(2, 3)))
    name, output, match = choose_feature_layer([("early", early), ("late", late)], logits, fc, "fc")
    assert (name, match) == ("late", ("avg", "none")) and output is late
    with pytest.raises(CAMNotApplicableError, match="no layer outputs a 4-D map with 4 channels"):
        choose_feature_layer([], logits, fc, "fc")


def test_an_extractor_given_an_example_is_settled_at_construction():
    from cam_tutorial.anymodel.extractor import CAMExtractor

    model = _gap_net().eval()
    with CAMExtractor(model) as lazy:
        assert lazy.target_name is None and lazy.pooling is None
    with CAMExtractor(model, example=torch.rand(1, 3, 8, 8)) as eager:
        assert (eager.target_name, eager.fc_name, eager.pooling) == ("0", "3", "avg")
