"""The bad-input battery (issue 12) for cam, models, sanity, saliency, data, viz and widgets.

Each case is one attempt to misuse the package. Where the input is wrong, the test asserts the
error type and a message fragment that names the problem *and* the fix; where the package should
cope, it asserts the value it gives. Cases are grouped by module; every model and image is tiny.
"""

from __future__ import annotations

import io
from typing import Any, Callable

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from torch import nn  # noqa: E402

from cam_tutorial.anymodel.extractor import CAMExtractor  # noqa: E402
from cam_tutorial.cam import CAMNotApplicableError, compute_cams, normalize_maps  # noqa: E402
from cam_tutorial.checks import check_image_batch  # noqa: E402
from cam_tutorial.dataset_maps import maps_for_dataset  # noqa: E402
from cam_tutorial.lab import SyntheticShapes, denormalize  # noqa: E402
from cam_tutorial.models import GlobalPool, ResNet18B, vgg16_fc, vgg16_gap  # noqa: E402
from cam_tutorial.methods.saliency import grad_cam, gradient_saliency  # noqa: E402
from cam_tutorial.methods.sanity import deletion_insertion_curves, spearman_per_map  # noqa: E402
from cam_tutorial.viz import overlay, show_gallery, show_map_rows  # noqa: E402
from cam_tutorial.book.widgets import CAMExplorer, uploaded_files  # noqa: E402

SIZE = 32
NAN, INF = float("nan"), float("inf")


def _resnet(seed: int = 0) -> ResNet18B:
    torch.manual_seed(seed)
    model = ResNet18B(num_classes=4, width=2, bias=True)
    with torch.no_grad():
        model.classifier.weight.normal_(0, 0.5)
    return model.eval()


def _images(batch: int = 2, size: int = SIZE) -> torch.Tensor:
    return torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(1))


def _with(x: torch.Tensor, value: float, where: tuple = (0, 0, 0, 0)) -> torch.Tensor:
    x = x.clone()
    x[where] = value
    return x


def _broken_classifier(value: float) -> ResNet18B:
    model = _resnet()
    with torch.no_grad():
        model.classifier.weight[1, 0] = value
    return model


def _broken_conv(value: float) -> ResNet18B:
    model = _resnet()
    with torch.no_grad():
        model.features.gate[0].weight[0, 0, 0, 0] = value
    return model


def _later_call(model: nn.Module, bad_images: torch.Tensor | None = None) -> Callable[[], Any]:
    """A first, good call (which verifies the model), then a call with bad images or weights."""

    def run() -> Any:
        with CAMExtractor(model) as cam:
            cam(_images())
            if bad_images is None:
                with torch.no_grad():
                    model.classifier.weight[0, 0] = NAN
            return cam(_images() if bad_images is None else bad_images)

    return run


def _fc_model() -> nn.Module:
    return vgg16_fc(4, width=2, image_size=SIZE).eval()


def _mlp_head_model() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))).eval()


def _not_pooled_model() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.AdaptiveMaxPool2d(2), nn.Flatten(),
                         nn.Linear(16, 3)).eval()


class _WrongWidth(nn.Module):
    """features -> pool -> classifier, but the classifier takes 5 inputs and the features have 4 channels."""

    def __init__(self) -> None:
        super().__init__()
        self.features, self.pool, self.classifier = nn.Conv2d(3, 4, 3), GlobalPool(), nn.Linear(5, 2)


def _pairs(n: int = 2) -> torch.utils.data.TensorDataset:
    return torch.utils.data.TensorDataset(_images(n), torch.tensor([0, 1, 2, 3][:n]))


# --------------------------------------------------------------------------------------------
# Cases that must raise: (id, call, error type, regex naming the problem and the fix)
# --------------------------------------------------------------------------------------------

CAM_ERRORS = [
    ("empty batch, first call", lambda: CAMExtractor(_resnet())(torch.zeros(0, 3, SIZE, SIZE)),
     ValueError, r"holds 0 images.*give at least one image"),
    ("empty batch, top_k", lambda: CAMExtractor(_resnet())(torch.zeros(0, 3, SIZE, SIZE), top_k=2),
     ValueError, r"holds 0 images"),
    ("empty batch, check_image_batch", lambda: check_image_batch(torch.zeros(0, 3, 8, 8)),
     ValueError, r"holds 0 images.*at least one"),
    ("NaN image, first call", lambda: CAMExtractor(_resnet())(_with(_images(), NAN)),
     ValueError, r"input images contain non-finite values \(1 NaN, 0 infinite.*nan_to_num"),
    ("+Inf image, first call", lambda: CAMExtractor(_resnet())(_with(_images(), INF)),
     ValueError, r"input images contain non-finite values \(0 NaN, 1 infinite.*normalised"),
    ("NaN image, later call", _later_call(_resnet(), _with(_images(), NAN)),
     ValueError, r"input images contain non-finite"),
    ("NaN classifier weight, first call", lambda: CAMExtractor(_broken_classifier(NAN))(_images()),
     ValueError, r"weights of the classifier 'classifier' contain non-finite.*reload a good checkpoint"),
    ("Inf classifier weight, first call", lambda: CAMExtractor(_broken_classifier(INF))(_images()),
     ValueError, r"weights of the classifier 'classifier' contain non-finite values \(0 NaN, 1 infinite"),
    ("NaN classifier weight, later call", _later_call(_resnet()),
     ValueError, r"weights of the classifier 'classifier' contain non-finite"),
    ("NaN conv weight: logits", lambda: CAMExtractor(_broken_conv(NAN))(_images()),
     ValueError, r"the logits contain non-finite.*broken weights: features\.gate\.0\.weight \(NaN or infinite\)"),
    ("NaN conv weight, torchvision-style probe", lambda: CAMExtractor(_broken_conv(NAN), fc_layer="classifier",
                                                                      target_layer="features.conv5_2")(_images()),
     ValueError, r"the logits contain non-finite.*fix the model"),
    ("normalize_maps +Inf pixel", lambda: normalize_maps(_with(torch.rand(2, 4, 4), INF, (0, 1, 1))),
     ValueError, r"maps contain non-finite values \(0 NaN, 1 infinite.*torch.nan_to_num"),
    ("normalize_maps NaN pixel, in place", lambda: normalize_maps(_with(torch.rand(1, 2, 4, 4), NAN), inplace=True),
     ValueError, r"maps contain non-finite values \(1 NaN"),
    ("channels-last images", lambda: CAMExtractor(_resnet())(torch.rand(2, SIZE, SIZE, 3)),
     ValueError, r"channels-last.*images.permute\(0, 3, 1, 2\)"),
    ("uint8 images", lambda: CAMExtractor(_resnet())(torch.zeros(2, 3, SIZE, SIZE, dtype=torch.uint8)),
     TypeError, r"torch.uint8: convert with images.float\(\) / 255"),
    ("FC head (VGG16)", lambda: CAMExtractor(_fc_model()),
     CAMNotApplicableError, r"Linear -> ReLU -> Dropout.*fc_layer=\.\.\."),
    ("MLP head in a Sequential", lambda: CAMExtractor(_mlp_head_model()),
     CAMNotApplicableError, r"Linear -> ReLU -> Linear.*target_layer=\.\.\., fc_layer=\.\.\."),
    ("logits not pooling of any layer", lambda: CAMExtractor(_not_pooled_model())(torch.rand(1, 3, 8, 8)),
     CAMNotApplicableError, r"fc_layer=\.\.\."),
    ("wrong fc_layer given", lambda: CAMExtractor(_resnet(), fc_layer="features.gate.0"),
     TypeError, r"fc_layer must be an nn.Linear"),
    ("class index past C", lambda: CAMExtractor(_resnet())(_images(), classes=4),
     ValueError, r"class index 4 is out of range: valid indices are 0 to 3"),
    ("float classes", lambda: CAMExtractor(_resnet())(_images(), classes=torch.tensor([0.0, 1.0])),
     TypeError, r"must be integers.*\.long\(\)"),
    ("maps for a K mismatch", lambda: compute_cams(_WrongWidth().eval(), _images()),
     ValueError, r"5 inputs per class but features have 4 channels"),
    ("compute_cams: empty batch", lambda: compute_cams(_resnet(), torch.zeros(0, 3, SIZE, SIZE)),
     ValueError, r"holds 0 images.*give at least one image"),
    ("compute_cams: NaN image", lambda: compute_cams(_resnet(), _with(_images(), NAN)),
     ValueError, r"input images contain non-finite values \(1 NaN, 0 infinite.*nan_to_num"),
    ("compute_cams: NaN classifier weight", lambda: compute_cams(_broken_classifier(NAN), _images()),
     ValueError, r"weights of the classifier 'classifier' contain non-finite.*reload a good checkpoint"),
    ("compute_cams: NaN conv weight", lambda: compute_cams(_broken_conv(NAN), _images()),
     ValueError, r"the logits contain non-finite.*broken weights: features\.gate\.0\.weight \(NaN or infinite\)"),
    ("compute_cams: channels-last", lambda: compute_cams(_resnet(), torch.rand(2, SIZE, SIZE, 3)),
     ValueError, r"channels-last.*images.permute\(0, 3, 1, 2\)"),
    ("compute_cams: FC head (VGG16)", lambda: compute_cams(_fc_model(), _images()),
     CAMNotApplicableError, r"Linear -> ReLU -> Dropout.*cam_tutorial.anymodel.extractor.CAMExtractor"),
    ("compute_cams: no features/pool/classifier", lambda: compute_cams(_mlp_head_model(), _images()),
     CAMNotApplicableError, r"not laid out as model.features -> model.pool -> model.classifier"),
    ("compute_cams: 1x1 features", lambda: compute_cams(_resnet(), _images(size=16)),
     ValueError, r"features are 1x1: a map needs more than one position; use larger images"),
    ("maps_for_dataset, bad batch size", lambda: maps_for_dataset(lambda x, c: None, _pairs(), batch_size=0),
     ValueError, r"batch_size must be a positive int"),
]

MODELS_ERRORS = [
    ("ResNet18B channels-last", lambda: ResNet18B(width=2)(torch.rand(2, 64, 64, 3)),
     ValueError, r"\(2, 64, 64, 3\) looks channels-last.*x.permute\(0, 3, 1, 2\)"),
    ("vgg16_gap channels-last", lambda: vgg16_gap(3, width=2)(torch.rand(2, 64, 64, 3)),
     ValueError, r"looks channels-last.*x.permute\(0, 3, 1, 2\)"),
    ("vgg16_fc channels-last", lambda: vgg16_fc(3, width=2, image_size=64)(torch.rand(2, 64, 64, 3)),
     ValueError, r"looks channels-last.*x.permute\(0, 3, 1, 2\)"),
    ("ResNet18B one grey channel", lambda: ResNet18B(width=2)(torch.rand(2, 1, 64, 64)),
     ValueError, r"expected 3 colour channels.*x.expand\(-1, 3, -1, -1\)"),
    ("ResNet18B unbatched image", lambda: ResNet18B(width=2)(torch.rand(3, 64, 64)),
     ValueError, r"\(B, 3, H, W\).*x.unsqueeze\(0\)"),
    ("ResNet18B too small", lambda: ResNet18B(width=2)(torch.rand(1, 3, 16, 16)),
     ValueError, r"16x16 px is too small.*resize the images up"),
    ("vgg16_fc wrong size", lambda: vgg16_fc(3, width=2, image_size=64)(torch.rand(1, 3, 32, 32)),
     ValueError, r"built for 64x64 inputs.*resize the images or build the model with image_size"),
    ("unknown pooling", lambda: GlobalPool("mean"), ValueError, r"unknown pooling 'mean': use 'avg'"),
]

SANITY_ERRORS = [
    ("Spearman, NaN in the first maps", lambda: spearman_per_map(_with(torch.rand(2, 4, 4), NAN, (0, 0, 0)),
                                                                 torch.rand(2, 4, 4)),
     ValueError, r"maps maps_a contain non-finite values \(1 NaN.*nan_to_num"),
    ("Spearman, Inf in the second maps", lambda: spearman_per_map(torch.rand(2, 4, 4),
                                                                  _with(torch.rand(2, 4, 4), -INF, (1, 2, 2))),
     ValueError, r"maps maps_b contain non-finite values \(0 NaN, 1 infinite"),
    ("Spearman, shapes differ", lambda: spearman_per_map(torch.rand(2, 4, 4), torch.rand(2, 4, 5)),
     ValueError, r"same shape"),
    ("deletion/insertion, NaN maps", lambda: deletion_insertion_curves(
        _resnet(), _images(), [0, 1], _with(torch.rand(2, SIZE, SIZE), NAN, (0, 3, 3)), steps=2),
     ValueError, r"the maps contain non-finite values \(1 NaN.*nan_to_num"),
    ("deletion/insertion, Inf images", lambda: deletion_insertion_curves(
        _resnet(), _with(_images(), INF), [0, 1], torch.rand(2, SIZE, SIZE), steps=2),
     ValueError, r"input images contain non-finite"),
    ("deletion/insertion, maps at the feature size", lambda: deletion_insertion_curves(
        _resnet(), _images(), [0, 1], torch.rand(2, 2, 2), steps=2),
     ValueError, r"upsample them to the image size first"),
    ("deletion/insertion, no steps", lambda: deletion_insertion_curves(
        _resnet(), _images(), [0, 1], torch.rand(2, SIZE, SIZE), steps=0),
     ValueError, r"steps must be a positive int"),
]

SALIENCY_ERRORS = [
    ("Grad-CAM, empty batch", lambda: grad_cam(_resnet(), torch.zeros(0, 3, SIZE, SIZE)),
     ValueError, r"holds 0 images.*give at least one image"),
    ("gradients, empty batch", lambda: gradient_saliency(_resnet(), torch.zeros(0, 3, SIZE, SIZE)),
     ValueError, r"holds 0 images"),
    ("Grad-CAM, NaN images", lambda: grad_cam(_resnet(), _with(_images(), NAN)),
     ValueError, r"input images contain non-finite.*nan_to_num"),
    ("gradients, channels-last", lambda: gradient_saliency(_resnet(), torch.rand(1, SIZE, SIZE, 3)),
     ValueError, r"permute\(0, 3, 1, 2\)"),
    ("Grad-CAM, NaN classifier weight", lambda: grad_cam(_broken_classifier(NAN), _images()),
     ValueError, r"the logits contain non-finite.*broken weights: classifier\.weight \(NaN or infinite\)"),
    ("gradients, Inf conv weight", lambda: gradient_saliency(_broken_conv(INF), _images()),
     ValueError, r"the logits contain non-finite.*features\.gate\.0\.weight.*fix the model"),
]

DATA_ERRORS = [
    ("float index", lambda: SyntheticShapes("test", length=4, image_size=SIZE)[1.7],
     TypeError, r"indices must be integers, got float 1.7; use an int"),
    ("string index", lambda: SyntheticShapes("test", length=4, image_size=SIZE)["1"],
     TypeError, r"indices must be integers, got str"),
    ("float index to label()", lambda: SyntheticShapes("test", length=4, image_size=SIZE).label(2.0),
     TypeError, r"indices must be integers, got float 2.0"),
    ("index past the end", lambda: SyntheticShapes("test", length=4, image_size=SIZE)[4],
     IndexError, r"index 4 out of range for a dataset of 4 items"),
    ("denormalize uint8", lambda: denormalize(torch.zeros(3, 4, 4, dtype=torch.uint8)),
     TypeError, r"integer images are not normalised.*images.float\(\) / 255"),
    ("denormalize one channel", lambda: denormalize(torch.zeros(1, 4, 4)),
     ValueError, r"\(3, H, W\) or \(B, 3, H, W\)"),
]

VIZ_ERRORS = [
    ("gallery label past class_names", lambda: show_gallery(_images(2), labels=[0, 5], class_names=["a", "b"]),
     ValueError, r"label 5 has no name: class_names holds 2 names.*leave class_names out"),
    ("gallery with too few labels", lambda: show_gallery(_images(3), labels=[0, 1]),
     ValueError, r"2 labels for 3 images: give one label per image"),
    ("gallery of two-channel images", lambda: show_gallery(torch.rand(2, 2, 8, 8)),
     ValueError, r"cannot show an image of shape \(2, 8, 8\).*\(1, H, W\)"),
    ("overlay with a normalised image", lambda: overlay(torch.randn(3, 8, 8) * 3, torch.rand(8, 8)),
     ValueError, r"denormalise it first"),
    ("overlay of a NaN map", lambda: overlay(np.zeros((8, 8, 3)), _with(torch.rand(4, 4), NAN, (0, 0))),
     ValueError, r"NaN or infinite"),
]


def _explorer_on(dataset: Any, **options: Any) -> Any:
    return CAMExplorer(_resnet(), dataset, **options)


class _Labels(torch.utils.data.Dataset):
    """Items that are bare labels, not (image, label) tuples."""

    image_size = SIZE

    def __len__(self) -> int:
        return 2

    def __getitem__(self, index: int) -> int:
        return index


class _BadBoxes(torch.utils.data.Dataset):
    image_size = SIZE

    def __len__(self) -> int:
        return 1

    def __getitem__(self, index: int) -> tuple:
        return _images(1)[0], 0, torch.zeros(3)


WIDGETS_ERRORS = [
    ("items without an image", lambda: _explorer_on(_Labels()),
     TypeError, r"items must be \(image, label\).*got int; wrap the dataset"),
    ("a box of three numbers", lambda: _explorer_on(_BadBoxes()),
     ValueError, r"box of shape \(3,\): a box is four numbers"),
    ("model in training mode", lambda: CAMExplorer(_resnet().train(), _pairs()),
     ValueError, r"training mode: call model.eval\(\)"),
    ("upload value of an unknown shape", lambda: uploaded_files("photo.png"),
     TypeError, r"a tuple \(ipywidgets 8\) or a dict \(ipywidgets 7\).*upgrade ipywidgets"),
    ("upload entry without content", lambda: uploaded_files({"a.png": {"metadata": {}}}),
     ValueError, r"'a.png' has no 'content'.*show_bytes"),
]

ERROR_CASES = [
    pytest.param(call, error, fragment, id=f"{module}: {name}")
    for module, cases in (("cam", CAM_ERRORS), ("models", MODELS_ERRORS), ("sanity", SANITY_ERRORS),
                          ("saliency", SALIENCY_ERRORS), ("data", DATA_ERRORS), ("viz", VIZ_ERRORS),
                          ("widgets", WIDGETS_ERRORS))
    for name, call, error, fragment in cases
]


@pytest.mark.parametrize("call, error, fragment", ERROR_CASES)
def test_bad_input_raises_an_error_that_names_the_problem_and_the_fix(call, error, fragment):
    with pytest.raises(error, match=fragment) as caught:
        call()
    plt.close("all")
    # A head error is a CAMNotApplicableError; any other bad input must not blame the head.
    if error is not CAMNotApplicableError:
        assert not isinstance(caught.value, CAMNotApplicableError)


# --------------------------------------------------------------------------------------------
# Inputs the package should cope with: the value it gives
# --------------------------------------------------------------------------------------------


def _numpy_index_gives_the_same_item() -> bool:
    ds = SyntheticShapes("test", length=4, image_size=SIZE)
    a, b = ds[np.int64(2)], ds[2]
    return torch.equal(a[0], b[0]) and a[1] == b[1] and ds.label(np.int32(3)) == ds[3][1]


def _grey_gallery_cmaps(images: torch.Tensor) -> list:
    fig = show_gallery(images)
    shown = [(ax.images[0].get_cmap().name, ax.images[0].get_array().shape) for ax in fig.axes if ax.images]
    plt.close(fig)
    return shown


def _first_pixel(images: torch.Tensor) -> float:
    fig = show_gallery(images)
    value = round(float(fig.axes[0].images[0].get_array()[0, 0, 0]), 4)
    plt.close(fig)
    return value


def _map_rows_of_grey_images() -> tuple:
    fig = show_map_rows(torch.rand(2, 1, 8, 8), {"CAM": torch.rand(2, 4, 4)})
    shapes = tuple(ax.images[0].get_array().shape for ax in fig.axes)
    plt.close(fig)
    return shapes


def _spearman_of_monotone_maps() -> list:
    a = torch.arange(16.0).reshape(1, 4, 4)
    return spearman_per_map(torch.cat([a, a]), torch.cat([a ** 3, -a])).tolist()


def _later_calls_stay_finite() -> bool:
    with CAMExtractor(_resnet()) as cam:
        first, second = cam(_images()), cam(_images(1))
    return bool(torch.isfinite(first.maps).all() and torch.isfinite(second.maps).all())


def _png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((20, 30, 3), 128, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def _explorer_source_after(value: Any) -> str:
    explorer = CAMExplorer(_resnet(), _pairs())
    explorer._on_upload({"new": value})
    return explorer.current["source"]


def _explorer_state(dataset: Any, index: int = 0, **options: Any) -> tuple:
    explorer = _explorer_on(dataset, **options)
    explorer.index.value = index
    state = explorer.current
    return state["source"], state["gt_box"] is None, bytes(explorer.image.value[:4])


def _names_beyond(names: list[str]) -> str:
    explorer = _explorer_on(_pairs(), class_names=names)
    return explorer._name(3) + " / " + explorer._name(-1) + " / " + explorer._name(0)


VALUE_CASES = [
    ("cam", "normalize_maps of a constant map is zeros",
     lambda: normalize_maps(torch.full((1, 3, 3), 7.0)).tolist(), [[[0.0] * 3] * 3]),
    ("cam", "normalize_maps of finite maps", lambda: normalize_maps(torch.tensor([[1.0, 3.0], [2.0, 5.0]])).tolist(),
     [[0.0, 0.5], [0.25, 1.0]]),
    ("cam", "one image (3, H, W) is a batch of one", lambda: tuple(check_image_batch(torch.rand(3, 8, 8)).shape),
     (1, 3, 8, 8)),
    ("cam", "later calls on finite inputs stay finite", _later_calls_stay_finite, True),
    ("models", "ResNet18B at the smallest size",
     lambda: tuple(ResNet18B(width=2).eval()(torch.rand(1, 3, 32, 32)).shape), (1, 10)),
    ("sanity", "Spearman of monotone maps", _spearman_of_monotone_maps, [1.0, -1.0]),
    ("data", "numpy integer indices", _numpy_index_gives_the_same_item, True),
    ("viz", "grey gallery (N, H, W) shows in grey", lambda: _grey_gallery_cmaps(torch.rand(2, 8, 8)),
     [("gray", (8, 8))] * 2),
    ("viz", "grey gallery (N, 1, H, W), normalised, shows in grey",
     lambda: _grey_gallery_cmaps(torch.randn(2, 1, 8, 8)), [("gray", (8, 8))] * 2),
    ("viz", "gallery of uint8 RGB tensors",
     lambda: _grey_gallery_cmaps(torch.full((1, 3, 8, 8), 255, dtype=torch.uint8)), [("viridis", (8, 8, 3))]),
    ("viz", "uint8 tensors are divided by 255, not denormalised", lambda: _first_pixel(
        torch.full((1, 3, 8, 8), 51, dtype=torch.uint8)), 0.2),
    ("viz", "map rows over grey images", _map_rows_of_grey_images, ((8, 8, 3), (8, 8, 3))),
    ("widgets", "upload, ipywidgets 7 dict", lambda: _explorer_source_after(
        {"grey.png": {"metadata": {"name": "grey.png"}, "content": _png_bytes()}}), "uploaded grey.png"),
    ("widgets", "upload, ipywidgets 8 tuple", lambda: _explorer_source_after(
        ({"name": "grey.png", "content": memoryview(_png_bytes())},)), "uploaded grey.png"),
    ("widgets", "an empty upload changes nothing", lambda: _explorer_source_after(()),
     "lab image 0 (true class: class 0)"),
    ("widgets", "(image, label) items: no box", lambda: _explorer_state(_pairs(), 1),
     ("lab image 1 (true class: class 1)", True, b"\x89PNG")),
    ("widgets", "labels past class_names show the index", lambda: _names_beyond(["zero", "one"]),
     "class 3 / class -1 / zero"),
]


def _entry_points() -> list:
    def extractor(model: nn.Module, images: torch.Tensor) -> Any:
        with CAMExtractor(model) as cam:
            return cam(images)

    return [pytest.param(compute_cams, id="compute_cams"), pytest.param(extractor, id="CAMExtractor"),
            pytest.param(gradient_saliency, id="gradient_saliency")]


@pytest.mark.parametrize("entry", _entry_points())
def test_a_submodule_left_in_training_mode_is_refused_and_its_statistics_stay(entry):
    """Issue 28 item 3: eval(), then one batch norm back in train(): every call used to change its
    running statistics for good (and the maps); now it is refused, by name, and nothing changes."""
    model = _resnet()
    model.features.conv3_1.bn1.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match=r"submodule 'features\.conv3_1\.bn1' \(BatchNorm2d\) is in training "
                                         r"mode: call model.eval\(\)"):
        entry(model, _images())
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    entry(model.eval(), _images())  # after model.eval(), it runs


@pytest.mark.parametrize("call, expected", [pytest.param(call, expected, id=f"{module}: {name}")
                                            for module, name, call, expected in VALUE_CASES])
def test_reasonable_input_gives_the_right_value(call, expected):
    assert call() == expected
    plt.close("all")


def test_the_battery_covers_every_module():
    modules = {case.id.split(":")[0] for case in ERROR_CASES}
    assert modules == {"cam", "models", "sanity", "saliency", "data", "viz", "widgets"}
    assert len(ERROR_CASES) + len(VALUE_CASES) >= 60
