"""How much of a dev score rests on dev questions that look like training questions.

No dev question is a training question (tests/test_dev_sets.py), but rule-made training questions can
come close to one. This script builds the training set of a config, finds for every question of a set
the most similar training question (Jaccard overlap of content words), and re-scores runs on the dev
questions with no training question at or above the threshold.

    .venv/bin/python scripts/dev_overlap.py --config configs/smollm2-135m-cpu.yaml outputs/run-a outputs/run-b
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from groundtune.augment import augment
from groundtune.card import require_eval_report
from groundtune.config import load_config
from groundtune.errors import GroundtuneError
from groundtune.evaluation.harness import read_question_set
from groundtune.readers import read_pairs

STOP = {"the", "a", "an", "of", "to", "does", "did", "is", "what", "which", "in", "source", "mention", "text",
        "mentioned", "according", "passage"}


def words(question: str) -> set[str]:
    return set(re.findall(r"[a-z0-9%]+", question.lower())) - STOP


def nearest(question: str, trained: list[set[str]]) -> float:
    q = words(question)
    return max(len(q & t) / max(1, len(q | t)) for t in trained)


def read_inputs(args) -> tuple[list, dict]:
    """The question set and every run's report, checked before anything is printed: a malformed set line or a
    missing report is a one-line error naming the file (and line), exit 1."""
    try:
        rows = read_question_set(args.set)
        return rows, {run: require_eval_report(Path(run)) for run in args.runs}
    except GroundtuneError as e:
        raise SystemExit(f"error: {e}") from None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", help="run folders with eval/report.json")
    parser.add_argument("--config", default="configs/smollm2-135m-cpu.yaml", help="config whose training set to build")
    parser.add_argument("--set", default="data/dev.jsonl", help="question set to check")
    parser.add_argument("--threshold", type=float, default=0.5)
    args = parser.parse_args(argv)

    rows, reports = read_inputs(args)
    cfg = load_config(args.config)
    trained = [words(p.question) for p in augment(read_pairs(cfg.data), cfg.data.augment, cfg.data.abstain_answer)]
    close = {r.id: round(nearest(r.question, trained), 2) for r in rows}
    far = {i for i, j in close.items() if j < args.threshold}
    print(f"{len(far)} of {len(rows)} questions of {args.set} have no training question of {args.config} "
          f"with word overlap >= {args.threshold}; the others: "
          + ", ".join(f"{i} ({j})" for i, j in close.items() if i not in far))
    name = rows[0].set
    for run, report in reports.items():
        asked = [q for q in report["questions"] if q["set"] == name]
        for label, subset in (("all", asked), ("far", [q for q in asked if q["id"] in far])):
            kf = [bool(q["tuned"]["key_fact_hit"]) for q in subset if q["tuned"]["key_fact_hit"] is not None]
            refused = [bool(q["tuned"]["abstained"]) for q in subset if q["answerable"]]
            print(f"{run}: {label} ({len(subset)} questions): key-fact accuracy {sum(kf) / max(1, len(kf)):.2f}, "
                  f"refusals {sum(refused) / max(1, len(refused)):.2f}")


if __name__ == "__main__":
    main()
