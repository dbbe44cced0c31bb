"""The main job (`groundtune run`, `make run`): data -> train -> evaluate, with timings printed."""

from __future__ import annotations

import time
from pathlib import Path

from groundtune.config import RunConfig


def run(cfg: RunConfig, resume: bool = False, overwrite: bool = False) -> Path:
    from groundtune.train import train

    t0 = time.perf_counter()
    folder = train(cfg, resume=resume, overwrite=overwrite)
    if cfg.eval.enabled:
        from groundtune.evaluation.harness import evaluate_run

        t1 = time.perf_counter()
        evaluate_run(folder, cfg.eval)
        print(f"[groundtune] evaluation took {time.perf_counter() - t1:.1f} s; report in {folder / 'eval'}", flush=True)
    print(f"[groundtune] main job finished in {time.perf_counter() - t0:.1f} s; model in {folder}", flush=True)
    return folder
