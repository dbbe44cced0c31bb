"""Run folders that are never half-written and never overwrite a user's earlier result by accident.

A run is written into `OUTPUT/NAME.partial/` (which also holds the training checkpoints that
`--resume` continues from). Only when everything is written is it renamed to `OUTPUT/NAME/`, and only
then does `OUTPUT/latest` (a relative symlink) move to it, itself replaced atomically. A killed run
therefore leaves `latest` on the previous finished run.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

from groundtune.errors import GroundtuneError

PACKAGES = ("groundtune", "torch", "transformers", "peft", "accelerate", "datasets", "evaluate",
            "safetensors", "tokenizers", "huggingface-hub", "numpy")


class RunDir:
    """The folders of one run: `final`, `partial` (work in progress) and the `latest` pointer."""

    def __init__(self, output_dir: str | Path, name: str):
        self.root = Path(output_dir)
        self.final = self.root / name
        self.partial = self.root / f"{name}.partial"
        self.latest = self.root / "latest"

    @property
    def checkpoints(self) -> Path:
        return self.partial / "checkpoints"

    def last_checkpoint(self) -> Path | None:
        found = sorted(self.checkpoints.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]))
        return found[-1] if found else None

    def check(self, overwrite: bool, resume: bool) -> None:
        """Refuse to clobber a finished run or silently drop an interrupted one; check the folder is writable."""
        if self.final.exists() and not overwrite:
            raise GroundtuneError("run folder already exists; pass --overwrite to replace it or choose another run_name",
                                  self.final)
        if resume and self.last_checkpoint() is None:
            raise GroundtuneError("--resume: no checkpoint of an interrupted run to resume from", self.checkpoints)
        if self.partial.exists() and not resume and not overwrite:
            raise GroundtuneError("an interrupted run is here; pass --resume to continue it or --overwrite to start over",
                                  self.partial)
        check_writable(self.root)

    def start(self, resume: bool) -> Path:
        """Create (or, on resume, reuse) the partial folder."""
        if not resume and self.partial.exists():
            shutil.rmtree(self.partial)
        try:
            self.partial.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise GroundtuneError(f"cannot create output folder: {e.strerror}", self.partial) from None
        return self.partial

    def abandon(self) -> None:
        """After a failure: drop the partial folder unless it holds a checkpoint to resume from."""
        if self.partial.exists() and self.last_checkpoint() is None:
            shutil.rmtree(self.partial, ignore_errors=True)

    def finish(self, keep_checkpoints: bool = False) -> Path:
        """Atomically publish the partial folder as the final run and point `latest` at it."""
        if not keep_checkpoints:
            shutil.rmtree(self.checkpoints, ignore_errors=True)
        old = None
        if self.final.exists():
            old = self.root / f".{self.final.name}.old-{os.getpid()}"
            os.replace(self.final, old)
        os.replace(self.partial, self.final)
        point_latest(self.root, self.final.name)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return self.final


def is_run_folder(path: str | Path) -> bool:
    """A finished groundtune run folder (or `scripts/merge_scale.py`'s re-merge of one): its resolved config.yaml
    and its chat dataset, from which the user's pairs and the passage are read back."""
    folder = Path(path)
    return (folder / "config.yaml").is_file() and (folder / "dataset" / "dataset_dict.json").is_file()


def check_writable(folder: Path) -> None:
    """Fail early, creating nothing, if `folder` could not be created or written."""
    existing = Path(folder).absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise GroundtuneError(f"cannot create output folder: {existing} is not a folder", folder)
    try:  # a real probe: permission bits do not tell (root, read-only mounts, /proc)
        os.rmdir(tempfile.mkdtemp(prefix=".groundtune-probe-", dir=existing))
    except OSError as e:
        raise GroundtuneError(f"output folder is not writable: {e.strerror}", existing) from None


def point_latest(root: Path, name: str) -> None:
    """Replace `root/latest` with a relative symlink to `name`, atomically."""
    tmp = root / f".latest-{os.getpid()}"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(name, tmp, target_is_directory=True)
    os.replace(tmp, root / "latest")


def package_versions() -> dict[str, str | None]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def environment() -> dict:
    import torch

    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "packages": package_versions(),
    }


class Timer:
    """Named wall-clock timings for the manifest."""

    def __init__(self):
        self.times: dict[str, float] = {}

    def __call__(self, name: str):
        timer = self

        class _Span:
            def __enter__(self):
                self.t0 = time.perf_counter()

            def __exit__(self, *exc):
                timer.times[name] = round(timer.times.get(name, 0.0) + time.perf_counter() - self.t0, 2)

        return _Span()


def write_json(path: Path, obj) -> None:
    """Write JSON via a temporary file and rename, so a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)
