"""The main job (`groundtune run`, `make run`): data -> train -> evaluate, with timings printed."""

from __future__ import annotations

import time
from pathlib import Path

from groundtune.config import RunConfig


def run(cfg: RunConfig, resume: bool = False, overwrite: bool = False) -> Path:
    from groundtune.train import train

    t0 = time.perf_counter()
    folder = train(cfg, resume=resume, overwrite=overwrite)
    print(f"[groundtune] main job finished in {time.perf_counter() - t0:.1f} s; model in {folder}", flush=True)
    return folder
