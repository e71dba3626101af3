"""Train the zoo's models under a preset and ship them inside the package (maintainers' tooling).

    python -m scripts.ship_models [--preset cpu] [--ship] [names...]

Without ``--ship`` it trains (or loads) each model and prints its accuracy. With ``--ship`` it
copies each model, and the shapes-trained model it starts from, into
``cam_tutorial/checkpoints/`` (removing that preset's stale files) and rewrites
``cam_tutorial/checkpoints/SHA256SUMS``, which the zoo checks shipped files against.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
from pathlib import Path

from cam_tutorial import zoo_cache
from cam_tutorial.config import get_preset
from cam_tutorial.zoo import available_models, preset_recipes, recipe, trained_model
from cam_tutorial.zoo_cache import MANIFEST_NAME, entry_folder, file_digest

logger = logging.getLogger("scripts.ship_models")


def write_manifest(folder: Path) -> None:
    """Write the manifest of the shipped files in ``folder`` anew (``<digest>  <file name>`` lines,
    ``sha256sum``'s format), which the zoo checks shipped files against."""
    lines = [f"{file_digest(path)}  {path.name}\n" for path in sorted(folder.glob("*.pt"))]
    temporary = folder / f".{MANIFEST_NAME}.tmp"
    temporary.write_text("".join(lines))
    os.replace(temporary, folder / MANIFEST_NAME)


def main(argv: list[str] | None = None) -> int:
    """Train (or load) the zoo's models and print their accuracy; ``--ship`` copies them into the
    package's checkpoints folder (replacing stale ones of that preset) and rewrites its manifest."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("names", nargs="*", default=available_models())
    parser.add_argument("--preset", default=None)
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--ship", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    preset = get_preset(args.preset)
    if args.ship:
        zoo_cache.PACKAGED_DIR.mkdir(exist_ok=True)
        current = {wanted.key for wanted in preset_recipes(preset)}
        for stale in zoo_cache.PACKAGED_DIR.glob(f"*-{preset.name}-*.pt"):
            if stale.stem not in current:
                logger.info("removing stale %s", stale)
                stale.unlink()
    for name in args.names:
        _, info = trained_model(name, preset, cache_dir=args.cache_dir, with_info=True)  # type: ignore[misc]
        print(f"{name:16s} {info.source:8s} val acc {info.history.val_acc[-1]:.3f}  test acc {info.test_acc:.3f}  "
              f"trained in {sum(info.history.epoch_seconds):.0f} s")
        if not args.ship:
            continue
        start = recipe(name, preset).start
        files = [(info.key, Path(info.path))]
        if start is not None:  # trained on the way (or already in the cache); ships beside the model
            files.append((start.key, entry_folder(start, args.cache_dir) / "final.pt"))
        for key, path in files:
            target = zoo_cache.PACKAGED_DIR / f"{key}.pt"
            if path == target or target.exists():
                continue
            shutil.copyfile(path, target.with_suffix(".tmp"))
            os.replace(target.with_suffix(".tmp"), target)
            print(f"  shipped {target} ({target.stat().st_size / 2**20:.1f} MiB)")
    if args.ship:
        write_manifest(zoo_cache.PACKAGED_DIR)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
