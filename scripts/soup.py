"""Average finished runs into one model (a "model soup" of their merged weights) and evaluate it.

    .venv/bin/python scripts/soup.py outputs/s17-ga1-ep3 outputs/s17-ga1-ep3-s43 outputs/s17-ga1-ep3-s44 \\
        --scale 1.25 --out outputs/soup/default-s42-44 --questions data/holdout.jsonl data/confirm.jsonl

Each run is merged at --scale x its trained update (as scripts/merge_scale.py does), and the merged weights
are averaged: base + the mean of the runs' updates. Runs of different seeds share no LoRA basis, so their A
and B matrices cannot be averaged one by one; the updates B A can. OUT is then a model folder like the first
run's (tokenizer, chat template, config.yaml with lora.merge_scale = --scale), evaluated like `groundtune eval`
(no base model) on the runs' own question sets (OUT/eval/) and on each --questions file (OUT/eval-<stem>/).
The averaged weights are deleted afterwards unless --keep; OUT/soup.md lists the runs and the numbers.

An experiment, not a recipe: N runs cost N trainings (README, Seeds).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from groundtune.evaluation.harness import evaluate_model
from groundtune.save import remerged_folder

METRICS = [("key_fact_accuracy", "key facts"), ("refusal_rate", "refusals"), ("abstention_rate", "abstained"),
           ("abstention_auroc", "AUROC"), ("unsupported_rate", "unsupported"), ("yes_no_accuracy", "yes/no right"),
           ("token_recall", "token recall")]


def soup_folder(runs: list[Path], out: Path, scale: float) -> Path:
    """OUT as a model folder holding the mean of the runs' weights, each run merged at `scale`."""
    import torch
    from safetensors.torch import load_file, save_file

    total = None
    with tempfile.TemporaryDirectory(prefix="groundtune-soup-") as tmp:
        for i, run in enumerate(runs):
            folder = remerged_folder(run, run / "adapter", Path(tmp) / str(i), scale)
            weights = load_file(folder / "model.safetensors")
            total = weights if total is None else {k: total[k] + weights[k] for k in total}
            print(f"added {run} x{scale:g}", flush=True)
            if i == 0:  # the first run's folder (config, tokenizer, chat template, dataset link) becomes OUT
                shutil.copytree(folder, out, symlinks=True, dirs_exist_ok=True)
    save_file({k: (v / len(runs)).to(torch.float32).contiguous() for k, v in total.items()}, out / "model.safetensors",
              metadata={"format": "pt"})
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", type=Path, nargs="+", help="finished run folders (with adapter/ and config.yaml)")
    parser.add_argument("--scale", type=float, default=1.25, help="merge scale of each run before averaging")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--questions", nargs="+", default=[], metavar="FILE", help="more JSONL question sets")
    parser.add_argument("--keep", action="store_true", help="keep OUT/model.safetensors")
    args = parser.parse_args(argv)
    for run in args.runs:
        if not (run / "adapter" / "adapter_config.json").is_file() or not (run / "config.yaml").is_file():
            raise SystemExit(f"{run}: not a finished run folder (no adapter/adapter_config.json or config.yaml)")
    if args.out.exists():
        raise SystemExit(f"{args.out}: exists; pass a new folder")
    soup_folder(args.runs, args.out, args.scale)
    lines = ["| set | " + " | ".join(name for _, name in METRICS) + " |", "|---" * (len(METRICS) + 1) + "|"]
    try:
        for questions in [None] + [[q] for q in args.questions]:
            name = "eval" if questions is None else f"eval-{Path(questions[0]).stem}"
            report = evaluate_model(args.out, args.out / name, compare_base=False, question_sets=questions)
            for set_name, values in report["metrics"]["tuned"].items():
                cells = ["–" if values.get(k) is None else f"{values[k]:.2f}" for k, _ in METRICS]
                lines.append(f"| {set_name} | " + " | ".join(cells) + " |")
    finally:
        if not args.keep:
            (args.out / "model.safetensors").unlink(missing_ok=True)
    command = " ".join(["scripts/soup.py", *map(str, args.runs), "--scale", f"{args.scale:g}", "--out", str(args.out)]
                       + (["--questions", *args.questions] if args.questions else []))
    (args.out / "soup.md").write_text(f"Measured with `{command}`.\n\n" + "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
