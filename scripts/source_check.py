"""What the source check (groundtune.source_check) does to answers already given, without generating again.

    .venv/bin/python scripts/source_check.py outputs/latest/eval outputs/holdout/s27/latest-x1.25/eval-holdout \\
        --run outputs/latest --out outputs/source_check

For each report folder (a `groundtune eval` / `make run` eval/ folder): every answer of the tuned model (and of the
base model, when the report has one) that names a number or name found in neither the run's passage nor the
user's own answers, or answers a question about a name neither mentions, is replaced by the abstention answer
(`SourceCheck.apply(answer, question)`, as the harness's `checked` rows), the answers are scored again as the harness scores them,
and the metrics are compared with the report's own. `--run` is the run folder whose passage and user answers the
check uses (default: the report's `model`). Writes OUT/source_check.md and OUT/source_check.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from groundtune.evaluation.harness import metrics_by_set, score_checked
from groundtune.evaluation.score import Scorer
from groundtune.source_check import SourceCheck
from merge_scale import as_question  # a report row back as the harness's Question

METRICS = [("key_fact_accuracy", "key facts"), ("refusal_rate", "refusals"), ("abstention_rate", "abstained"),
           ("unsupported_rate", "unsupported #/name"), ("mean_consistency", "consistency")]


def checked_metrics(report: dict, check: SourceCheck, scorer: Scorer, model: str) -> tuple[dict, dict]:
    """The report's metrics for `model` after the check, and how many answers it withheld per set."""
    rows = report["questions"]
    questions = [as_question(r) for r in rows]
    scored = score_checked(scorer, check, questions, [r[model] for r in rows])
    withheld = {s: sum(a["answer"] != r[model]["answer"] for a, r in zip(scored, rows) if r["set"] == s)
                for s in report["sets"]}
    return metrics_by_set(report["sets"], questions, scored), withheld


def table(results: list[dict]) -> str:
    head = "| report | set | model | withheld | " + " | ".join(f"{n} (before -> after)" for _, n in METRICS) + " |"
    lines = [head, "|" + "---|" * (4 + len(METRICS))]
    fmt = lambda v: "–" if v is None else f"{v:.2f}"  # noqa: E731
    for res in results:
        for set_name, after in res["after"].items():
            before = res["before"][set_name]
            cells = [f"{fmt(before[m])} -> {fmt(after[m])}" for m, _ in METRICS]
            lines.append(f"| {res['report']} | {set_name} | {res['model']} | {res['withheld'][set_name]} | "
                         + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("reports", nargs="+", type=Path, help="eval folders holding report.json")
    ap.add_argument("--run", type=Path, help="run folder whose passage and user answers the check uses")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    scorer, results = Scorer(), []
    for folder in args.reports:
        report = json.loads((folder / "report.json").read_text(encoding="utf-8"))
        check = SourceCheck.from_dir(args.run or report["model"])
        for model in ("tuned", "base"):
            if not report["metrics"].get(model):
                continue
            after, withheld = checked_metrics(report, check, scorer, model)
            results.append({"report": str(folder), "model": model, "withheld": withheld,
                            "before": report["metrics"][model], "after": after})
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "source_check.json").write_text(json.dumps(results, indent=1), encoding="utf-8")
    (args.out / "source_check.md").write_text(table(results), encoding="utf-8")
    print(table(results))


if __name__ == "__main__":
    main()
