"""What an abstention threshold would cost: refusals of answerable questions at a target abstention rate.

The harness stores, per question, the tuned model's log P(the answer opens with "The source does not
say") as `abstain_logprob`; `abstention AUROC` ranks it. This script turns that ranking into the question
a user asks: if the model abstained whenever `abstain_logprob >= t`, with t set so that a target share of
the unanswerable questions is abstained on, what share of the answerable questions (every set but the
user's own trained pairs, as in the AUROC) would it refuse? It also prints the model's own operating
point (its greedy answers) and draws each run's ROC curve.

    .venv/bin/python scripts/abstention_threshold.py outputs/run-a outputs/run-b --out outputs/abstention_threshold.png

With --halves, it also asks whether such a threshold could be set without the dev sets: the questions are cut
in two halves by sha256(id), the threshold is set on one half's unanswerable questions and applied to the
other half, both ways (a shipped abstention bias would have to be set on some calibration questions, and
these are the only labelled ones there are).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from groundtune.card import REPORT, require_eval_report
from groundtune.errors import GroundtuneError
from groundtune.evaluation.harness import EXCLUDED_FROM_AUROC, question_half


def split(report: dict, set_name: str = "unanswerable") -> tuple[list[dict], list[dict]]:
    """(unanswerable, answerable) tuned answers, split as `abstention_auroc` splits them: the answerable ones
    are every set's but the user's own trained pairs."""
    pos = [q["tuned"] for q in report["questions"] if q["set"] == set_name and not q["answerable"]]
    neg = [q["tuned"] for q in report["questions"] if q["set"] != EXCLUDED_FROM_AUROC and q["answerable"]]
    return pos, neg


def scores(report: dict, path: Path | None = None, set_name: str = "unanswerable") -> tuple[list[float], list[float]]:
    """(unanswerable, answerable) abstain_logprobs of the tuned model."""
    pos, neg = split(report, set_name)
    if not pos or not neg:
        raise GroundtuneError(f"report has no {'unanswerable' if not pos else 'answerable'} questions to compare", path)
    return [a["abstain_logprob"] for a in pos], [a["abstain_logprob"] for a in neg]


def refusals_at(pos: list[float], neg: list[float], target: float) -> tuple[float, float, float]:
    """(threshold, abstention, refusals) for the highest threshold that abstains on >= target of `pos`."""
    for t in sorted(set(pos), reverse=True):
        abstained = sum(p >= t for p in pos) / len(pos)
        if abstained >= target:
            return t, abstained, sum(n >= t for n in neg) / len(neg)
    raise AssertionError("unreachable: the lowest positive score abstains on every positive")


def roc(pos: list[float], neg: list[float]) -> tuple[list[float], list[float]]:
    """(refusal rate, abstention rate) at every threshold, from abstain-on-nothing to abstain-on-everything."""
    points = [(0.0, 0.0)]
    for t in sorted(set(pos + neg), reverse=True):
        points.append((sum(n >= t for n in neg) / len(neg), sum(p >= t for p in pos) / len(pos)))
    return [x for x, _ in points], [y for _, y in points]


def generated_point(report: dict) -> tuple[float, float]:
    """(refusal rate, abstention rate) of the greedy answers, over the same questions as the curve: with only
    a dev set of answerable questions, the harness's dev `refusal_rate` and `abstention_rate`."""
    pos, neg = split(report)
    return sum(a["abstained"] for a in neg) / len(neg), sum(a["abstained"] for a in pos) / len(pos)


def transferred(report: dict, target: float) -> list[tuple[float, float, float]]:
    """For each half h (0, 1): (threshold set on half h as `refusals_at` sets it, abstention and refusals on the
    other half at that threshold)."""
    parts = [scores({**report, "questions": [q for q in report["questions"] if question_half(q["id"]) == h]}) for h in (0, 1)]
    out = []
    for h in (0, 1):
        t, _, _ = refusals_at(*parts[h], target)
        pos, neg = parts[1 - h]
        out.append((t, sum(p >= t for p in pos) / len(pos), sum(n >= t for n in neg) / len(neg)))
    return out


def plot(curves: dict[str, tuple], target: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 5))
    for name, (xs, ys, point) in curves.items():
        line, = ax.plot(xs, ys, drawstyle="steps-post", label=name)
        ax.plot(*point, marker="o", color=line.get_color())
    ax.axhline(target, color="grey", linestyle=":", linewidth=1)
    ax.plot([0, 1], [0, 1], color="lightgrey", linewidth=1)
    ax.set_xlabel("answerable questions refused")
    ax.set_ylabel("unanswerable questions abstained on")
    ax.set_title("threshold on log P(abstention); dot = greedy answers", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def read_scores(run: Path) -> tuple[dict, list[float], list[float]]:
    """A run's report and its (unanswerable, answerable) scores; a missing or malformed report is a one-line
    error naming the file (publish's check, `card.require_eval_report`)."""
    try:
        report = require_eval_report(run)
        return (report, *scores(report, run / REPORT))
    except GroundtuneError as e:
        raise SystemExit(f"error: {e}") from None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run folders with eval/report.json")
    parser.add_argument("--target", type=float, default=0.8, help="share of unanswerable questions to abstain on")
    parser.add_argument("--out", type=Path, help="where to write the ROC plot (PNG)")
    parser.add_argument("--halves", action="store_true",
                        help="also set the threshold on one half of the questions and apply it to the other")
    args = parser.parse_args(argv)
    read = {run: read_scores(run) for run in args.runs}  # every report checked before anything is printed
    print(f"| run | greedy: refused | greedy: abstained | threshold for >= {args.target:g} | abstained | "
          "answerable refused |\n|---|---|---|---|---|---|")
    curves = {}
    for run, (report, pos, neg) in read.items():
        t, abstained, refused = refusals_at(pos, neg, args.target)
        refusal, abstention = generated_point(report)
        print(f"| {run.name} | {refusal:.2f} | {abstention:.2f} | {t:.2f} | {abstained:.2f} | {refused:.2f} |")
        curves[run.name] = (*roc(pos, neg), (refusal, abstention))
    if args.halves:
        print(f"\n| run | threshold set on half 0 | half 1 abstained | half 1 refused | threshold set on half 1 | "
              "half 0 abstained | half 0 refused |\n|---|---|---|---|---|---|---|")
        for run, (report, _, _) in read.items():
            cells = [f"{x:.2f}" for row in transferred(report, args.target) for x in row]
            print(f"| {run.name} | " + " | ".join(cells) + " |")
    if args.out:
        plot(curves, args.target, args.out)
        print(f"plot written to {args.out}")


if __name__ == "__main__":
    main()
