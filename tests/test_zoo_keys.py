"""The 11 shipped checkpoints' zoo keys and state_dict names, and the cpu models' test splits, pinned.

The files under ``cam_tutorial/checkpoints/`` are 2.7 hours of CPU training, found by their key
(``zoo.recipe(name, preset).key``, a hash of the recipe's identity, which includes a digest of
the network's state_dict names and shapes). A refactor of the zoo's recipes or of the models that
changed a key or a tensor name would silently stop the shipped files from loading (the zoo would
train anew): this test says so first. Never retrain to fix it; re-key the files with a script.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import pytest
import torch

from cam_tutorial import zoo, zoo_cache
from cam_tutorial.config import get_preset

# (preset, name) -> (key, number of state_dict entries, digest of their [[name, shape], ...])
SHIPPED = {
    ("ci", "resnet18b_gap"): ("resnet18b_gap-ci-78e552a453d1", 121, "6969752f4d09efc4"),
    ("ci", "resnet18b_gmp"): ("resnet18b_gmp-ci-944160597f15", 121, "6969752f4d09efc4"),
    ("ci", "vgg16_gap_left"): ("vgg16_gap_left-ci-94cd7971b6e0", 100, "ffb76f0745750bd6"),
    ("ci", "vgg16_fc_left"): ("vgg16_fc_left-ci-d41d65343035", 97, "807c48a8ca445211"),
    ("cpu", "resnet18b_gap_shapes"): ("resnet18b_gap_shapes-cpu-e1bbf1e8523f", 121, "6969752f4d09efc4"),
    ("cpu", "resnet18b_gap"): ("resnet18b_gap-cpu-bc7ce31709c5", 121, "6969752f4d09efc4"),
    ("cpu", "resnet18b_gmp"): ("resnet18b_gmp-cpu-1e546deab3b7", 121, "6969752f4d09efc4"),
    ("cpu", "vgg16_gap_left_shapes"): ("vgg16_gap_left_shapes-cpu-3a3b15aa711d", 100, "ffb76f0745750bd6"),
    ("cpu", "vgg16_gap_left"): ("vgg16_gap_left-cpu-c7b4faa225d7", 100, "ffb76f0745750bd6"),
    ("cpu", "vgg16_fc_left_shapes"): ("vgg16_fc_left_shapes-cpu-e50d05f0edbf", 97, "cfd4421f7b4122b8"),
    ("cpu", "vgg16_fc_left"): ("vgg16_fc_left-cpu-838f849a39ce", 97, "cfd4421f7b4122b8"),
}


def _tensor_names(state: dict[str, torch.Tensor]) -> tuple[int, str]:
    names = [[name, list(tensor.shape)] for name, tensor in state.items()]
    return len(names), hashlib.sha256(json.dumps(names).encode()).hexdigest()[:16]


def test_the_shipped_files_are_exactly_the_pinned_keys():
    shipped = sorted(path.stem for path in zoo_cache.PACKAGED_DIR.glob("*.pt"))
    assert shipped == sorted(key for key, _, _ in SHIPPED.values())


@pytest.mark.parametrize("preset", ["ci", "cpu"])
def test_recipes_give_the_pinned_keys(preset):
    found = {(preset, r.name): r.key for r in zoo.preset_recipes(get_preset(preset))}
    assert found == {where: key for where, (key, _, _) in SHIPPED.items() if where[0] == preset}


def test_a_key_builds_its_network_on_meta_without_importing_the_compiler():
    """Every process that loads a model computes its key. On the meta device init_weights sets
    nothing: PyTorch's meta ``normal_`` imports torch._dynamo, 1.5 s in each notebook's kernel."""
    code = ("import sys; from cam_tutorial import zoo; from cam_tutorial.config import get_preset; "
            "[r.key for p in ('ci', 'cpu', 'gpu') for r in zoo.preset_recipes(get_preset(p))]; "
            "print(sorted(m for m in ('torch._dynamo', 'torchvision') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("where", sorted(SHIPPED), ids=lambda where: "-".join(where))
def test_shipped_state_dict_names_are_pinned_and_fit_the_network(where):
    key, count, digest = SHIPPED[where]
    stored = torch.load(zoo_cache.PACKAGED_DIR / f"{key}.pt", map_location="cpu", weights_only=True)
    assert _tensor_names(stored["model"]) == (count, digest)
    wanted = {r.name: r for r in zoo.preset_recipes(get_preset(where[0]))}[where[1]]
    assert _tensor_names(wanted.network().state_dict()) == (count, digest)


# The test splits the cpu models were scored on when they shipped: sha256 (16 hex digits) of every
# item's image, label, box and mask bytes. The book's outputs are these models on these pixels;
# a change to the lab that moved one pixel says so here (bump LAB_VERSION and retrain, or undo it).
CPU_TEST_SPLITS = {
    ("resnet18b_gap", "resnet18b_gmp"): "7a0e1fde9e05e0d6",  # objects anywhere
    ("vgg16_gap_left", "vgg16_fc_left"): "d4cd666cfff17906",  # objects in the left half
}


@pytest.mark.parametrize("names", sorted(CPU_TEST_SPLITS), ids="-".join)
def test_the_cpu_models_test_splits_are_the_pixels_they_were_scored_on(names):
    labs = {zoo.recipe(name, get_preset("cpu")).lab for name in names}
    assert len(labs) == 1, f"{names} no longer share one test split"
    digest, split = hashlib.sha256(), labs.pop().dataset("test")
    for i in range(len(split)):
        image, label, box, mask = split[i]
        for part in (image.numpy().tobytes(), str(label).encode(), box.numpy().tobytes(), mask.numpy().tobytes()):
            digest.update(part)
    assert digest.hexdigest()[:16] == CPU_TEST_SPLITS[names]
