"""Faithfulness after each epoch of one run: would checkpoint selection on it pay?

Train with the epoch checkpoints kept, then evaluate each of them with the same harness as the final model:

    .venv/bin/groundtune run --config configs/smollm2-135m-cpu.yaml --eval.compare_base false \\
        --train.keep_checkpoints true --train.save_total_limit 4 --run_name curve
    .venv/bin/python scripts/epoch_curve.py outputs/curve

Each checkpoint's adapter is merged into a fresh copy of the base and written, with the run's tokenizer,
chat template and dataset, to OUT/epoch-<k>/ (a model folder `groundtune eval` and `pipeline` read); the
harness report lands in OUT/epoch-<k>/eval/. The merged weights (~0.5 GB each for the 135M model in
float32) are deleted after scoring unless --keep-models is given. The table goes to OUT/epoch_curve.md and a plot to OUT/epoch_curve.png
(OUT defaults to RUN/epochs). The dev numbers of an epoch chosen this way would be optimistic: the dev set
would have picked it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from groundtune.ablate import COLUMNS, cell, plot_columns  # the ablation table's columns, so the two tables read alike
from groundtune.config import load_run_config
from groundtune.evaluation.harness import evaluate_model
from groundtune.save import remerged_folder


def checkpoints(run: Path) -> list[tuple[float, Path]]:
    """(epoch, folder) of every kept checkpoint, in training order."""
    found = []
    for folder in (run / "checkpoints").glob("checkpoint-*"):
        state = json.loads((folder / "trainer_state.json").read_text())
        found.append((round(state["epoch"], 2), folder))
    if not found:
        raise SystemExit(f"{run}/checkpoints: no checkpoint-* folders (train with --train.keep_checkpoints true)")
    return sorted(found)


def merged_folder(run: Path, checkpoint: Path, out: Path) -> Path:
    """A model folder like the run's, with this checkpoint's adapter merged into the base (times the run's
    lora.merge_scale, as the run's own save did)."""
    return remerged_folder(run, checkpoint, out, load_run_config(run / "config.yaml").lora.merge_scale)


def row(label: str, report: dict) -> list[str]:
    m = report["metrics"]["tuned"]
    return [label] + [cell(m.get(s, {}).get(k)) for s, k, _ in COLUMNS]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", type=Path, help="run folder trained with --train.keep_checkpoints true")
    parser.add_argument("--out", type=Path, help="where the per-epoch folders go [default: RUN/epochs]")
    parser.add_argument("--keep-models", action="store_true", help="keep each epoch's merged model.safetensors")
    args = parser.parse_args()
    out = args.out or args.run / "epochs"
    epochs, reports = [], []
    for epoch, checkpoint in checkpoints(args.run):
        folder = merged_folder(args.run, checkpoint, out / f"epoch-{epoch:g}")
        print(f"epoch {epoch:g}: evaluating {folder}", flush=True)
        epochs.append(epoch)
        reports.append(evaluate_model(folder, folder / "eval", compare_base=False))
        if not args.keep_models:
            (folder / "model.safetensors").unlink()
    lines = ["| epoch | " + " | ".join(name for _, _, name in COLUMNS) + " |",
             "|" + "---|" * (len(COLUMNS) + 1)]
    lines += ["| " + " | ".join(row(f"{e:g}", r)) + " |" for e, r in zip(epochs, reports)]
    (out / "epoch_curve.md").write_text("\n".join(lines) + "\n")
    plot_columns(epochs, [r["metrics"]["tuned"] for r in reports], COLUMNS, "epoch",
                 "faithfulness after each epoch (greedy answers, harness)", out / "epoch_curve.png")
    print("\n".join(lines))
    print(f"written to {out}/epoch_curve.md and epoch_curve.png")


if __name__ == "__main__":
    main()
