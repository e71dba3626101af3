"""The online book's launch configuration: Binder and Thebe (Live Code) buttons, and the
environment Binder builds from ``binder/``."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _config() -> dict:
    return yaml.safe_load((ROOT / "_config.yml").read_text())


def test_launch_buttons_offer_colab_binder_and_live_code():
    buttons = _config()["launch_buttons"]
    assert buttons["colab_url"] == "https://colab.research.google.com"
    assert buttons["binderhub_url"] == "https://mybinder.org"
    assert buttons["thebe"] is True


def test_binder_environment_installs_this_package_with_cpu_torch():
    lines = [line.strip() for line in (ROOT / "binder" / "requirements.txt").read_text().splitlines()
             if line.strip() and not line.lstrip().startswith("#")]
    assert "-e ." in lines, "Binder must install the book's package from the checkout"
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in lines
    assert {"torch", "torchvision"} <= set(lines)
    runtime = (ROOT / "binder" / "runtime.txt").read_text().strip()
    assert runtime.startswith("python-3.")


def test_binder_folder_is_not_part_of_the_book():
    # repo2docker reads binder/; the book must not try to render it
    config = _config()
    toc = (ROOT / "_toc.yml").read_text()
    assert "binder" not in toc
    assert config.get("only_build_toc_files") is True
