"""The book's repository URL, read from _config.yml so that it is written in one place."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _read_config() -> dict[str, str]:
    text = (ROOT / "_config.yml").read_text()
    url = re.search(r"^\s*url:\s*(\S+)", text.split("repository:", 1)[1], re.M)
    branch = re.search(r"^\s*branch:\s*(\S+)", text.split("repository:", 1)[1], re.M)
    if not url or not branch:
        raise RuntimeError("_config.yml needs repository.url and repository.branch")
    return {"url": url.group(1).rstrip("/"), "branch": branch.group(1)}


_CONFIG = _read_config()
REPOSITORY_URL = _CONFIG["url"]
BRANCH = _CONFIG["branch"]


def colab_url(stem: str) -> str:
    """The Colab address of notebooks/<stem>.ipynb on the book's branch."""
    path = REPOSITORY_URL.replace("https://github.com/", "")
    return f"https://colab.research.google.com/github/{path}/blob/{BRANCH}/notebooks/{stem}.ipynb"
