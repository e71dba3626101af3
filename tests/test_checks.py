"""The shared input checks (cam_tutorial.checks): one wording of each error, everywhere."""

import pytest
import torch
from torch import nn

from cam_tutorial.anymodel.heads import resolve_submodule
from cam_tutorial.checks import (
    as_class_tensor,
    check_finite,
    check_finite_logits,
    check_image_batch,
    check_model,
    broken_weights,
)


def test_check_model_refuses_non_modules_and_training_mode():
    with pytest.raises(TypeError, match="torch.nn.Module, got int"):
        check_model(3)
    with pytest.raises(ValueError, match=r"training mode: call model.eval\(\)"):
        check_model(nn.Linear(2, 2).train())
    check_model(nn.Linear(2, 2).train(), eval_mode=False)


def test_check_model_names_a_submodule_left_in_training_mode():
    """Issue 28 item 3: model.eval() then one batch norm back in train(): refused, by name."""
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.Sequential(nn.BatchNorm2d(4), nn.ReLU())).eval()
    model[1][0].train()
    with pytest.raises(ValueError, match=r"submodule '1\.0' \(BatchNorm2d\) is in training mode: call model.eval\(\)"):
        check_model(model)
    check_model(model, eval_mode=False)
    check_model(model.eval())


def test_every_map_method_words_training_mode_the_same_way():
    from cam_tutorial.anymodel.extractor import CAMExtractor
    from cam_tutorial.cam import compute_cams
    from cam_tutorial.models import ResNet18B
    from cam_tutorial.methods.saliency import gradient_saliency

    model = ResNet18B(num_classes=3, width=2).train()
    images = torch.rand(1, 3, 32, 32)
    messages = []
    for call in (lambda: CAMExtractor(model)(images), lambda: compute_cams(model, images),
                 lambda: gradient_saliency(model, images)):
        with pytest.raises(ValueError) as caught:
            call()
        messages.append(str(caught.value))
    assert len(set(messages)) == 1


def test_class_indices_are_checked_and_broadcast():
    cpu = torch.device("cpu")
    assert as_class_tensor(1, 3, 4, cpu).tolist() == [1, 1, 1]
    with pytest.raises(ValueError, match="out of range"):
        as_class_tensor([0, 4], 2, 4, cpu)
    with pytest.raises(TypeError, match="got a bool"):
        as_class_tensor(True, 2, 4, cpu)


def test_non_finite_values_are_named():
    with pytest.raises(ValueError, match=r"the maps contain non-finite values \(1 NaN, 0 infinite, of 2\)"):
        check_finite(torch.tensor([0.0, float("nan")]), "the maps", "fix")
    broken = nn.Linear(2, 2)
    with torch.no_grad():
        broken.bias[0] = float("inf")
    assert broken_weights(broken) == ["bias (NaN or infinite)"]
    with pytest.raises(ValueError, match=r"broken weights: bias \(NaN or infinite\)"):
        check_finite_logits(broken, torch.tensor([[float("inf"), 0.0]]))


def test_image_batches_and_submodules():
    assert check_image_batch(torch.zeros(3, 4, 4)).shape == (1, 3, 4, 4)
    with pytest.raises(ValueError, match="channels-last"):
        check_image_batch(torch.zeros(1, 8, 8, 3))
    model = nn.Sequential(nn.ReLU())
    assert resolve_submodule(model, "0", "target_layer") is model[0]
    with pytest.raises(ValueError, match="no submodule 'x' for target_layer"):
        resolve_submodule(model, "x", "target_layer")


def test_nan_logits_from_a_negative_running_variance_blame_that_buffer_not_float16():
    """Issue 28 item 14: a batch norm's negative running variance (eval mode takes its square root)
    is named as the cause, not a float16 overflow."""
    model = nn.Sequential(nn.Conv2d(3, 2, 1), nn.BatchNorm2d(2), nn.Flatten(), nn.LazyLinear(2)).eval()
    model[1].running_var[0] = -1.0
    logits = model(torch.ones(1, 3, 2, 2))
    with pytest.raises(ValueError, match=r"broken weights: 1\.running_var \(negative") as caught:
        check_finite_logits(model, logits)
    assert "float16" not in str(caught.value)
