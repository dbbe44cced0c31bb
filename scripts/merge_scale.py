"""What the merge scale (`lora.merge_scale`) does to finished runs, without training them again.

    .venv/bin/python scripts/merge_scale.py outputs/s19-final outputs/s17-init42-data43 \\
        --scales 1 1.25 1.5 2 --out outputs/merge_scale

For each run and scale: the run's adapter merged into the base with its trained update x scale (relative to
the plain trained update, whatever `lora.merge_scale` the run was saved with), evaluated on the run's question
sets as `groundtune eval` would (no base model), the merged weights deleted afterwards (the reports stay in
OUT/<run>-x<scale>/eval). Writes OUT/merge_scale.md (a row per run and scale, then the mean of each scale over
the runs), OUT/merge_scale.json and OUT/merge_scale.png (each metric's mean against the scale).

`--attention-scale A` merges the attention layers' update (q/k/v/o projections) at A and the other layers (the
MLP) at each of --scales: which part of the extrapolation does what (README, Seeds). Its folders are
OUT/<run>-x<scale>-attn<A>.

`--abstain-bias B` also writes an abstention bias into each merged folder's generation_config.json
(`save.abstention_bias`: B added to the logit of the abstention's first token at the start of an answer, which
`pipeline` and groundtune's decoding both apply); its folders are OUT/<run>-x<scale>-bias<B>.

`--questions FILE...` answers other question sets instead of the run's own (each run's report then goes to
OUT/<run>-x<scale>/eval-<file stem>/), e.g. data/holdout.jsonl, the set no recipe was chosen on.

`--halves` adds the check that the scale was not picked for these questions alone: the dev and unanswerable
questions are cut in two by a hash of their id (as `scripts/abstention_threshold.py --halves` does), and the
table shows the means per scale on each half.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from groundtune.ablate import COLUMNS as DEV_COLUMNS, cell, plot_columns  # the ablation table's columns, so the tables read alike
from groundtune.evaluation.harness import Question, evaluate_model, metrics_by_set, question_half
from groundtune.kfold import HELDOUT, METRICS as KFOLD_METRICS
from groundtune.save import abstention_bias, remerged_folder
from groundtune.seeds import mean_metrics

# a `groundtune kfold` fold run answers the user's held-out pairs instead of the dev sets: its table adds these
COLUMNS = DEV_COLUMNS + [(HELDOUT, metric, f"held-out user questions: {name}") for metric, name in KFOLD_METRICS]
# any other question set (--questions; answerable and unanswerable questions mixed, as in data/holdout.jsonl)
SET_METRICS = [("key_fact_accuracy", "key-fact acc."), ("refusal_rate", "refusals"), ("abstention_rate", "abstained"),
               ("abstention_auroc", "abstention AUROC"), ("unsupported_rate", "unsupported #/name"),
               ("mean_consistency", "consistency"), ("yes_no_accuracy", "yes/no right")]


def run_labels(runs: list[Path]) -> list[str]:
    """Each run's name in tables and folder names; runs of the same name (seeds/a/runs/seed43, seeds/b/runs/seed43)
    get their grandparent folder's name in front."""
    names = [r.name for r in runs]
    labels = [f"{r.resolve().parent.parent.name}-{r.name}" if names.count(r.name) > 1 else r.name for r in runs]
    clash = next((l for l in labels if labels.count(l) > 1), None)
    if clash:
        raise SystemExit(f"{clash}: two runs would share this name in the table and under --out; pass one of them")
    return labels


def folder_name(label: str, scale: float, attention: float | None = None, bias: float | None = None) -> str:
    return (f"{label}-x{scale:g}" + (f"-attn{attention:g}" if attention is not None else "")
            + (f"-bias{bias:g}" if bias is not None else ""))


def eval_folder(questions: list[str] | None) -> str:
    """Where a re-merged folder keeps its report: eval/ for the run's own question sets, eval-<stems>/ for others."""
    return "eval" if not questions else "eval-" + "-".join(Path(q).stem for q in questions)


def evaluate_scaled(run: Path, label: str, scale: float, out: Path, attention: float | None = None,
                    questions: list[str] | None = None, bias: float | None = None) -> dict:
    """report.json's dict for `run` re-merged at `scale` (times the plain trained update; the attention layers
    at `attention` when given; with an abstention bias `bias` when given), answering the run's question sets or
    the files `questions`."""
    folder = out / folder_name(label, scale, attention, bias)
    report_path = folder / eval_folder(questions) / "report.json"
    if folder.exists() and not same_run(run, folder):  # made from another run of the same name (retrained since)
        shutil.rmtree(folder)
    if report_path.is_file():  # a rerun with more runs or scales reuses what is there
        return json.loads(report_path.read_text())
    remerged_folder(run, run / "adapter", folder, scale, attention)
    if bias is not None:
        set_abstention_bias(folder, bias)
    try:
        return evaluate_model(folder, report_path.parent, compare_base=False, question_sets=questions)
    finally:
        (folder / "model.safetensors").unlink(missing_ok=True)


def set_abstention_bias(folder: Path, bias: float) -> None:
    """The model folder's generation_config.json with `save.abstention_bias` for its tokenizer and abstain answer."""
    from transformers import GenerationConfig

    from groundtune.config import load_run_config
    from groundtune.model import load_tokenizer

    config = GenerationConfig.from_pretrained(folder)
    answer = load_run_config(folder / "config.yaml").data.abstain_answer
    config.sequence_bias = abstention_bias(load_tokenizer(str(folder)), answer, bias)
    config.save_pretrained(folder)


def same_run(run: Path, folder: Path) -> bool:
    """The re-merged folder was made from this very run: it holds a copy of the run's manifest.json."""
    a, b = run / "manifest.json", folder / "manifest.json"
    return a.is_file() and b.is_file() and a.read_bytes() == b.read_bytes()


def metrics_on(report: dict, keep) -> dict:
    """The tuned model's metrics per set, recomputed over the questions `keep(question)` accepts."""
    rows = [q for q in report["questions"] if keep(q)]
    return metrics_by_set(dict.fromkeys(q["set"] for q in rows), [as_question(q) for q in rows], [q["tuned"] for q in rows])


def as_question(row: dict) -> Question:
    """A report.json question row back as the harness's Question."""
    return Question(row["set"], row["id"], row["question"], row["reference"], row["answerable"], row["key_facts"])


def used_columns(all_metrics: list[dict]) -> list[tuple[str, str, str]]:
    """The COLUMNS some run has a value for (a dev-set run has no held-out user questions, a fold run no dev sets),
    then SET_METRICS for each other set (--questions)."""
    known = {s for s, _, _ in COLUMNS}
    others = [s for s in dict.fromkeys(k for m in all_metrics for k in m) if s not in known]
    columns = COLUMNS + [(s, metric, f"{s}: {name}") for s in others for metric, name in SET_METRICS]
    return [c for c in columns if any(m.get(c[0], {}).get(c[1]) is not None for m in all_metrics)]


def table_row(label: str, scale: float, metrics: dict, columns: list) -> str:
    return f"| {label} | {scale:g} | " + " | ".join(cell(metrics.get(s, {}).get(k)) for s, k, _ in columns) + " |"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", type=Path, nargs="+", help="finished run folders (with adapter/ and config.yaml)")
    parser.add_argument("--scales", type=float, nargs="+", default=[1.0, 1.25, 1.5, 2.0])
    parser.add_argument("--out", type=Path, default=Path("outputs/merge_scale"))
    parser.add_argument("--halves", action="store_true", help="also the means on each half of the questions")
    parser.add_argument("--questions", nargs="+", metavar="FILE",
                        help="answer these JSONL question sets (e.g. data/holdout.jsonl) instead of the run's own")
    parser.add_argument("--attention-scale", type=float, default=None,
                        help="merge the attention layers' update at this scale, the other layers at each of --scales")
    parser.add_argument("--abstain-bias", type=float, default=None,
                        help="add this to the logit of the abstention's first token at the start of each answer")
    args = parser.parse_args(argv)
    for run in args.runs:
        if not (run / "adapter" / "adapter_config.json").is_file() or not (run / "config.yaml").is_file():
            raise SystemExit(f"{run}: not a finished run folder (no adapter/adapter_config.json or config.yaml)")
    labels = run_labels(args.runs)
    rows, means, halves = [], {}, {0: {}, 1: {}}
    for scale in args.scales:
        reports = []
        for run, label in zip(args.runs, labels):
            print(f"{run} x{scale:g}", flush=True)
            reports.append(evaluate_scaled(run, label, scale, args.out, args.attention_scale, args.questions,
                                           args.abstain_bias))
            rows.append({"run": str(run), "label": label, "scale": scale, "metrics": reports[-1]["metrics"]["tuned"]})
        means[scale] = mean_metrics([r["metrics"]["tuned"] for r in reports])
        for h in (0, 1):  # the trained pairs count in both halves
            halves[h][scale] = mean_metrics([metrics_on(r, lambda q, h=h: q["set"] == "train" or question_half(q["id"]) == h)
                                             for r in reports])
    columns = used_columns([r["metrics"] for r in rows])
    lines = ["| run | scale | " + " | ".join(h for _, _, h in columns) + " |", "|" + "---|" * (len(columns) + 2)]
    lines += [table_row(r["label"], r["scale"], r["metrics"], columns) for r in rows]
    lines += [table_row(f"mean of {len(args.runs)}", x, means[x], columns) for x in args.scales]
    if args.halves:
        lines += [table_row(f"mean, half {h} of the questions", x, halves[h][x], columns)
                  for h in (0, 1) for x in args.scales]
    args.out.mkdir(parents=True, exist_ok=True)
    command = " ".join(["scripts/merge_scale.py", *(str(r) for r in args.runs), "--scales",
                        *(f"{x:g}" for x in args.scales), "--out", str(args.out)] + (["--halves"] if args.halves else [])
                       + ([f"--attention-scale {args.attention_scale:g}"] if args.attention_scale is not None else [])
                       + ([f"--abstain-bias {args.abstain_bias:g}"] if args.abstain_bias is not None else [])
                       + (["--questions", *args.questions] if args.questions else []))
    (args.out / "merge_scale.md").write_text(f"Measured with `{command}`.\n\n" + "\n".join(lines) + "\n")
    (args.out / "merge_scale.json").write_text(json.dumps(
        {"rows": rows, "means": {f"{x:g}": means[x] for x in args.scales},
         "halves": {str(h): {f"{x:g}": halves[h][x] for x in args.scales} for h in (0, 1)}}, indent=2) + "\n")
    plot_columns(args.scales, [means[x] for x in args.scales], columns, "merge scale (x the trained LoRA update)",
                 "faithfulness against the merge scale (mean over runs)", args.out / "merge_scale.png")
    print("\n".join(lines))
    print(f"written to {args.out}/merge_scale.md, merge_scale.json and merge_scale.png")


if __name__ == "__main__":
    main()
