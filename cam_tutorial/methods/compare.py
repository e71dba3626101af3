"""Score map methods against the ground truth, and compare them in one table.

A *map method* turns an image into a map of "where": CAM of a GAP model (Zhou et al. 2016), CAM
of the same network with global max pooling, backprop saliency (Simonyan et al. 2014; the
"backprop" baseline of the CAM paper's Table 3) and a centre baseline that looks at no image
(Choe et al. 2020). :func:`localization_report` scores one method's maps on a dataset with every
measure of :mod:`cam_tutorial.boxes`, :mod:`cam_tutorial.metrics` and :mod:`cam_tutorial.coverage`;
:func:`method_maps` computes the four methods' maps; :func:`comparison_rows` turns the reports into
rows for :func:`cam_tutorial.summary.markdown_table`. Notebook 07 and ``benchmarks/localization.py
--models`` both build their table this way, so the book and the benchmark cannot disagree.

The measures of one report (all fractions in [0, 1]):

* ``top1_cls``: classification accuracy (for the centre baseline, the classifier it is
  paired with);
* ``top1_loc`` and ``gt_known_loc``: the paper's rule (:func:`~cam_tutorial.boxes.box_from_cam`
  at 20% of the maximum), IoU >= 0.5, with and without the class having to be right;
* ``max_box_acc``: MaxBoxAcc, delta 0.5, the largest contour, the best threshold for the whole
  dataset; ``max_box_acc_v2``: MaxBoxAccV2, the mean over delta 0.3, 0.5, 0.7 of all contours
  (``v2_03``, ``v2_05``, ``v2_07`` each);
* ``pointing``: the pointing game (Zhang et al. 2016) against the object's mask;
* ``object_covered`` and ``area_ratio``: of the pixels at or above 20% of the maximum, how much
  of the object they cover and how large they are relative to it.

Example:
    >>> import torch
    >>> from cam_tutorial.dataset_maps import DatasetMaps
    >>> maps = torch.zeros(2, 32, 32); maps[0, 4:12, 4:20] = 1; maps[1, 20:30, 0:8] = 1
    >>> found = DatasetMaps(logits=torch.eye(2), maps=maps, classes=torch.arange(2),
    ...                     labels=torch.arange(2), boxes=torch.tensor([[4., 4, 20, 12], [0, 20, 8, 30]]))
    >>> report = localization_report(found, "perfect")
    >>> report.row()["max_box_acc_v2"], report.row()["top1_loc"]
    (1.0, 1.0)
"""

from __future__ import annotations

import dataclasses
import logging
import numbers
import time
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn
from torch.utils.data import Subset

from cam_tutorial.boxes import LocalizationAccuracy, boxes_from_cams, center_gaussian_maps, localization_accuracy
from cam_tutorial.cam import normalize_maps
from cam_tutorial.coverage import AreaFraction, cam_area_fraction, object_size_coverage, pointing_game
from cam_tutorial.dataset_maps import DatasetMaps, cams_for_dataset, maps_for_dataset
from cam_tutorial.evaluation import model_device
from cam_tutorial.metrics import MaxBoxAccResult, max_box_acc_both
from cam_tutorial.config import Preset
from cam_tutorial.methods.saliency import gradient_saliency

__all__ = [
    "CAM_GAP",
    "CAM_GMP",
    "SALIENCY",
    "CENTER",
    "ROW_HEADERS",
    "LocalizationReport",
    "localization_report",
    "saliency_for_dataset",
    "center_baseline",
    "method_maps",
    "comparison_rows",
    "twin_measures",
    "CalibratedBoxAcc",
    "calibrated_box_acc",
]

logger = logging.getLogger(__name__)

#: The names of the four methods, as the tables print them.
CAM_GAP = "CAM (GAP)"
CAM_GMP = "CAM (GMP)"
SALIENCY = "backprop saliency (GAP model)"
CENTER = "centre baseline (Gaussian)"

#: Column titles for :func:`comparison_rows`' keys.
ROW_HEADERS: dict[str, str] = {
    "method": "method",
    "top1_cls": "top-1 cls",
    "top1_loc": "top-1 loc",
    "gt_known_loc": "GT-known loc",
    "max_box_acc": "MaxBoxAcc",
    "max_box_acc_v2": "MaxBoxAccV2",
    "v2_03": "V2 δ=0.3",
    "v2_05": "V2 δ=0.5",
    "v2_07": "V2 δ=0.7",
    "pointing": "pointing game",
    "object_covered": "object covered",
    "area_ratio": "area / object",
}


@dataclass(frozen=True, eq=False)
class LocalizationReport:
    """Every localisation measure of one method on one dataset.
    Used in no chapter directly.

    Attributes:
        name: the method's name.
        loc: top-1 and ground-truth-known localisation with the paper's rule (``loc.ious``: the
            IoU of each image's box).
        boxes: ``(N, 4)`` the paper's-rule boxes.
        v2: MaxBoxAccV2 (all contours, delta 0.3 / 0.5 / 0.7), with the BoxAcc(tau) curves.
        original: MaxBoxAcc (largest contour, delta 0.5).
        pointing: the pointing-game hit rate.
        area: coverage of the object (``None`` without masks).
        seconds: wall time of the scoring.
    """

    name: str
    loc: LocalizationAccuracy
    boxes: np.ndarray
    v2: MaxBoxAccResult
    original: MaxBoxAccResult
    pointing: float
    area: AreaFraction | None
    seconds: float

    def row(self) -> dict[str, Any]:
        """The report as one table row: the keys of :data:`ROW_HEADERS`."""
        area = self.area.means() if self.area is not None else {}
        per_delta = dict(zip(self.v2.iou_thresholds.round(2).tolist(), self.v2.max_box_acc.tolist()))
        return {
            "method": self.name,
            "top1_cls": self.loc.top1_cls,
            "top1_loc": self.loc.top1_loc,
            "gt_known_loc": self.loc.gt_known_loc,
            "max_box_acc": float(self.original.max_box_acc[0]),
            "max_box_acc_v2": self.v2.mean,
            "v2_03": per_delta.get(0.3, float("nan")),
            "v2_05": per_delta.get(0.5, float("nan")),
            "v2_07": per_delta.get(0.7, float("nan")),
            "pointing": self.pointing,
            "object_covered": area.get("object_covered", float("nan")),
            "area_ratio": area.get("area_ratio", float("nan")),
        }


def localization_report(
    found: DatasetMaps,
    name: str = "",
) -> LocalizationReport:
    """Score one method's maps against the dataset's boxes (and masks) with every measure.
    Used in chapter 8, and the appendix.

    Args:
        found: the maps, scores and ground truth (:func:`~cam_tutorial.dataset_maps.cams_for_dataset`
            and friends); it needs boxes.
        name: the method's name in the table.

    Returns:
        A :class:`LocalizationReport`.

    Raises:
        ValueError: when ``found`` carries no ground-truth boxes, or some are missing (NaN).
    """
    missing = torch.isnan(found.boxes).any(dim=1) if found.boxes is not None else None
    if missing is None or missing.all():
        raise ValueError("these maps carry no ground-truth boxes (Imagenette's are all NaN): localisation needs a "
                         "dataset with boxes, e.g. the lab or load_dataset('pets', ...); without boxes, compare "
                         "classification only, e.g. (found.predictions == found.labels).float().mean()")
    if missing.any():
        raise ValueError(f"{int(missing.sum())} of the {len(found)} ground-truth boxes are missing (NaN): score the "
                         "others with localization_report(found.subset(~found.boxes.isnan().any(dim=1)), ...)")
    start = time.perf_counter()
    maps = found.maps.numpy()
    gt_boxes = found.boxes.numpy()
    boxes = boxes_from_cams(maps)  # the paper's 20% of the maximum
    loc = localization_accuracy(found.predictions, found.labels, boxes, gt_boxes)
    v2, original = max_box_acc_both(maps, gt_boxes)  # one tracing for both
    if found.masks is not None:
        masks = found.masks.numpy()
        pointing = pointing_game(maps, masks, kind="mask")
        area = cam_area_fraction(maps, masks)
    else:
        pointing = pointing_game(maps, gt_boxes, kind="box")
        area = None
    seconds = time.perf_counter() - start
    logger.info("scored %s on %d images in %.1f s: %s", name or "maps", len(found), seconds, v2)
    return LocalizationReport(name=name, loc=loc, boxes=boxes, v2=v2, original=original, pointing=pointing,
                              area=area, seconds=seconds)


def saliency_for_dataset(
    model: nn.Module,
    dataset: torch.utils.data.Dataset,
    batch_size: int = 128,
    device: str | torch.device | None = None,
    *,
    progress: bool = True,
) -> DatasetMaps:
    """Backprop saliency (:func:`~cam_tutorial.methods.saliency.gradient_saliency`) of the true class,
    min-max normalised per image, and the logits, for every item of ``dataset`` (see
    :func:`~cam_tutorial.dataset_maps.maps_for_dataset`).
    Used in no chapter directly."""
    device = model_device(model) if device is None else device

    def compute(images: torch.Tensor, wanted: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            logits = model(images)
        return logits, normalize_maps(gradient_saliency(model, images, classes=wanted).float())

    return maps_for_dataset(compute, dataset, batch_size, device, progress=progress, desc="backprop saliency")


def center_baseline(found: DatasetMaps, sigma: float = 0.25) -> DatasetMaps:
    """The same items with every map replaced by a centred Gaussian
    (:func:`~cam_tutorial.boxes.center_gaussian_maps`): the baseline that looks at no image.
    Scores and ground truth are kept, so its "classification" is that of ``found``'s model.
    Used in chapters 7 and 8."""
    n, height, width = found.maps.shape
    bumps = torch.from_numpy(center_gaussian_maps(n, height, width, sigma)).float()
    return dataclasses.replace(found, maps=bumps)


def method_maps(
    gap_model: nn.Module,
    dataset: torch.utils.data.Dataset,
    gmp_model: nn.Module | None = None,
    batch_size: int = 128,
    device: str | torch.device | None = None,
    *,
    progress: bool = True,
    timings: dict[str, float] | None = None,
) -> dict[str, DatasetMaps]:
    """The maps of the book's methods on ``dataset``, each of the image's true class.
    Used in the appendix.

    Returns ``{CAM_GAP: ..., CAM_GMP: ... (with gmp_model), SALIENCY: ..., CENTER: ...}``;
    saliency and the centre baseline use ``gap_model``. With ``timings`` (a dict), the wall time
    of each method's maps is stored in it, in seconds.
    """
    out: dict[str, DatasetMaps] = {}
    jobs = {CAM_GAP: lambda: cams_for_dataset(gap_model, dataset, batch_size, device, progress=progress),
            CAM_GMP: lambda: cams_for_dataset(gmp_model, dataset, batch_size, device, progress=progress),
            SALIENCY: lambda: saliency_for_dataset(gap_model, dataset, batch_size, device, progress=progress),
            CENTER: lambda: center_baseline(out[CAM_GAP])}
    for name, job in jobs.items():
        if name == CAM_GMP and gmp_model is None:
            continue
        start = time.perf_counter()
        out[name] = job()
        if timings is not None:
            timings[name] = time.perf_counter() - start
    return out


def comparison_rows(reports: Mapping[str, LocalizationReport] | list[LocalizationReport]) -> list[dict[str, Any]]:
    """One :meth:`LocalizationReport.row` per report, for
    :func:`~cam_tutorial.summary.markdown_table` (headers: :data:`ROW_HEADERS`).
    Used in chapter 8, and the appendix."""
    items = reports.values() if isinstance(reports, Mapping) else reports
    return [report.row() for report in items]


def twin_measures(preset: Preset, device: torch.device | str | None = None, *,
                  maps: Mapping[str, DatasetMaps] | None = None,
                  reports: Mapping[str, LocalizationReport] | None = None,
                  test_size: int | None = None) -> dict[str, dict[str, Any]]:
    """Every measure of the GAP/GMP twins (``resnet18b_gap``, ``resnet18b_gmp``) at ``preset``.
    Used in the appendix.

    One :meth:`LocalizationReport.row` per pooling (keys ``"GAP"`` and ``"GMP"``), plus
    ``"matched"``: the mean share of the object covered by its map's ``|object|`` highest pixels
    (:func:`~cam_tutorial.coverage.object_size_coverage`). The twins come from the zoo (cached or
    shipped) unless this run's ``maps`` (and ``reports`` of them) are given. ``test_size``: measure
    them on the test split's first ``test_size`` images only (default: all of them), e.g. another
    preset's twins on no more images than this run has.

    Example:
        >>> from cam_tutorial.config import get_preset
        >>> rows = twin_measures(get_preset("ci"))  # doctest: +SKIP
        >>> sorted(rows), "matched" in rows["GAP"]  # doctest: +SKIP
        (['GAP', 'GMP'], True)
    """
    if test_size is not None and maps is not None:
        raise ValueError("test_size chooses the zoo twins' test images: with maps given, give maps of the images "
                         "you want instead")
    whole = isinstance(test_size, numbers.Integral) and not isinstance(test_size, bool)
    if test_size is not None and not (whole and 1 <= test_size <= preset.test_size):
        raise ValueError(f"test_size must lie in [1, {preset.test_size}] (a whole number of the {preset.name} test "
                         f"split's images; None for all of them), got {test_size!r}")
    if maps is None:
        from cam_tutorial.zoo import model_dataset, trained_model  # the zoo trains; only load it when needed

        test_set = model_dataset("resnet18b_gap", "test", preset)
        if test_size is not None:
            test_set = Subset(test_set, range(int(test_size)))
        maps = {pool: cams_for_dataset(trained_model(f"resnet18b_{pool.lower()}", preset, device=device,
                                                     progress=False),
                                       test_set, preset.eval_batch_size, device)
                for pool in ("GAP", "GMP")}
    if reports is None:
        reports = {pool: localization_report(found, pool) for pool, found in maps.items()}
    rows = dict(zip(reports, comparison_rows(reports)))
    return {pool: {**rows[pool], "matched": float(np.nanmean(object_size_coverage(found.maps, found.masks)))}
            for pool, found in maps.items()}


@dataclass(frozen=True, eq=False)
class CalibratedBoxAcc:
    """BoxAcc on a test split at thresholds chosen on a held-out split (Choe et al. 2020).
    Used in no chapter directly.

    Attributes:
        iou_thresholds: the deltas, ``(n_delta,)``.
        chosen_threshold: per delta, the tau that is best on the held-out split.
        calibrated: per delta, the test BoxAcc at ``chosen_threshold``: the honest number.
        test_best_threshold: per delta, the tau that is best on the test split itself.
        test_max: per delta, MaxBoxAcc on test: the optimistic number (at least ``calibrated``).
    """

    iou_thresholds: np.ndarray
    chosen_threshold: np.ndarray
    calibrated: np.ndarray
    test_best_threshold: np.ndarray
    test_max: np.ndarray

    @property
    def optimism(self) -> np.ndarray:
        """Per delta, how much choosing tau on the test split itself adds (``test_max - calibrated``)."""
        return self.test_max - self.calibrated


def calibrated_box_acc(held_out: MaxBoxAccResult, test: MaxBoxAccResult) -> CalibratedBoxAcc:
    """Choose tau on a held-out split's boxes, report BoxAcc on the test split at that tau.
    Used in chapter 7, and the appendix.

    Choe et al. (CVPR 2020) tune a method's hyper-parameters, the CAM threshold included, on a
    held-out split with boxes and report on test. MaxBoxAcc on the test split alone picks the
    threshold with the test boxes, an optimistic number; this is the protocol's version.

    Args:
        held_out: :func:`~cam_tutorial.metrics.max_box_acc` on the held-out (validation) maps.
        test: the same measure, with the same thresholds, on the test maps.

    Returns:
        A :class:`CalibratedBoxAcc`, one entry per delta.

    Raises:
        ValueError: when the two results use different taus, deltas or contour rules.

    Example:
        >>> import numpy as np
        >>> from cam_tutorial.metrics import max_box_acc
        >>> cams = np.zeros((1, 32, 32)); cams[0, 4:12, 4:20] = 1
        >>> same = max_box_acc(cams, [[4, 4, 20, 12]], iou_thresholds=(0.5,))
        >>> calibrated_box_acc(same, same).calibrated.tolist()
        [1.0]
    """
    if not (np.array_equal(held_out.cam_thresholds, test.cam_thresholds)
            and np.array_equal(held_out.iou_thresholds, test.iou_thresholds)
            and held_out.multi_contour == test.multi_contour):
        raise ValueError("the held-out and test results must use the same cam_thresholds, iou_thresholds and "
                         "multi_contour: compute both with the same max_box_acc(...) arguments")
    taus = test.cam_thresholds
    # the same taus in the same order, so the held-out best is found by position
    chosen = np.array([int(np.flatnonzero(taus == tau)[0]) for tau in held_out.best_cam_threshold])
    calibrated = test.box_acc[chosen, np.arange(len(test.iou_thresholds))]
    return CalibratedBoxAcc(iou_thresholds=test.iou_thresholds.copy(), chosen_threshold=taus[chosen].copy(),
                            calibrated=calibrated, test_best_threshold=test.best_cam_threshold.copy(),
                            test_max=test.max_box_acc.copy())
