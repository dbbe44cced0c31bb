"""Fit `consistency` on half of the hand-labelled set and show, on the other half, how far to trust it.

    groundtune calibrate --labels tests/data/consistency_labels.jsonl --out src/groundtune/evaluation/weights.json

* Split: within each category, rows are ordered by sha256 of their id and alternate between the
  calibration half and the held-out half, so both halves hold every kind of error and the split never
  changes when rows are added to other categories.
* Fit (calibration half only): a logistic regression (non-negative weights, standardised signals,
  balanced classes; see `fit`) on the rows the abstention rule does not decide; the decision threshold of `consistency`
  and of each signal is the one with the best balanced accuracy on the calibration half.
* Report (held-out half only): ROC AUC and balanced accuracy (at the calibration threshold) of every
  signal and of `consistency`. The table is printed and stored in weights.json under `heldout`.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from groundtune.errors import GroundtuneError
from groundtune.evaluation.score import SIGNALS, Row, Scorer, combine
from groundtune.evaluation.text import abstention_span

LABEL_FIELDS = ("id", "source", "question", "reference", "answer", "label", "category")
FEATURES = SIGNALS
"""Signals the logistic regression combines."""


def read_labels(path: str | Path) -> list[dict]:
    from groundtune.readers import json_objects

    rows = []
    for lineno, rec in json_objects(path):
        missing = [k for k in LABEL_FIELDS if k not in rec]
        if missing:
            raise GroundtuneError(f"missing field {missing[0]!r}", path, lineno)
        if rec["label"] not in (0, 1):
            raise GroundtuneError(f"label must be 0 or 1, got {rec['label']!r}", path, lineno)
        rows.append(rec)
    if len({r["id"] for r in rows}) != len(rows):
        raise GroundtuneError("duplicate ids", path)
    return rows


def split(rows: list[dict]) -> tuple[list[dict], list[dict]]:
    """(calibration, held-out): alternate within each category, in sha256(id) order."""
    calib, held = [], []
    for category in sorted({r["category"] for r in rows}):
        ordered = sorted((r for r in rows if r["category"] == category),
                         key=lambda r: hashlib.sha256(r["id"].encode()).hexdigest())
        calib += ordered[0::2]
        held += ordered[1::2]
    return calib, held


def label_rows(rows: list[dict]) -> list[Row]:
    return [Row(r["id"], r["answer"], r["reference"], r["source"], r["question"]) for r in rows]


def signal_matrix(scored: list[dict], names=FEATURES) -> np.ndarray:
    return np.array([[s["signals"][n] for n in names] for s in scored], dtype=float)


def decided_by_rule(row: dict, scored: dict) -> bool:
    return scored["abstained"] or abstention_span(row["reference"]) is not None


def fit(rows: list[dict], scored: list[dict], c: float = 1.0) -> dict:
    """Logistic regression with non-negative weights on the rows the abstention rule leaves to the signals.

    Every signal is built so that higher means more consistent; the weights are kept >= 0 so the fit
    cannot learn that a closer copy of the source is worse (in a labelled set of minimal edits, the
    errors are often nearer to verbatim than the faithful paraphrases are). Classes are balanced and
    the weights L2-regularised (strength 1/c) on standardised signals.
    """
    from scipy.optimize import minimize

    keep = [i for i, (r, s) in enumerate(zip(rows, scored)) if not decided_by_rule(r, s)]
    x = signal_matrix([scored[i] for i in keep])
    y = np.array([rows[i]["label"] for i in keep], dtype=float)
    mean, scale = x.mean(0), x.std(0)
    scale[scale == 0] = 1.0
    z = (x - mean) / scale
    sample_weight = np.where(y == 1, len(y) / (2 * y.sum()), len(y) / (2 * (len(y) - y.sum())))

    def loss(params):
        w, b = params[:-1], params[-1]
        logits = z @ w + b
        grad = sample_weight * (1 / (1 + np.exp(-logits)) - y)
        value = np.sum(sample_weight * (np.logaddexp(0, logits) - y * logits)) + 0.5 / c * np.sum(w * w)
        return value, np.concatenate([z.T @ grad + w / c, [grad.sum()]])

    bounds = [(0, None)] * z.shape[1] + [(None, None)]
    result = minimize(loss, np.zeros(z.shape[1] + 1), jac=True, method="L-BFGS-B", bounds=bounds)
    return {"features": list(FEATURES), "coef": result.x[:-1].round(6).tolist(),
            "intercept": round(float(result.x[-1]), 6), "mean": mean.round(6).tolist(),
            "scale": scale.round(6).tolist()}


def best_threshold(values: np.ndarray, labels: np.ndarray) -> float:
    """The cut (value >= t means consistent) with the best balanced accuracy; midpoints between values."""
    cuts = np.unique(values)
    candidates = np.concatenate([[cuts[0] - 1e-6], (cuts[:-1] + cuts[1:]) / 2, [cuts[-1] + 1e-6]])
    scores = [balanced_accuracy(values, labels, t) for t in candidates]
    return float(candidates[int(np.argmax(scores))])


def balanced_accuracy(values: np.ndarray, labels: np.ndarray, threshold: float) -> float:
    from sklearn.metrics import balanced_accuracy_score

    return float(balanced_accuracy_score(labels, (values >= threshold).astype(int)))


def auc(values: np.ndarray, labels: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(labels, values))


def columns(rows: list[dict], scored: list[dict], weights: dict) -> dict[str, np.ndarray]:
    """Every signal, the abstention agreement and `consistency` as arrays over the rows."""
    cols = {n: signal_matrix(scored, [n])[:, 0] for n in FEATURES}
    ref_abstains = [abstention_span(r["reference"]) is not None for r in rows]
    cols["abstention_match"] = np.array([float(s["abstained"] == a) for s, a in zip(scored, ref_abstains)])
    cols["consistency"] = np.array([combine(s["signals"], s["abstained"], a, weights)
                                    for s, a in zip(scored, ref_abstains)])
    return cols


def table(calib: list[dict], calib_scored, held: list[dict], held_scored, weights: dict) -> list[dict]:
    """Per signal: threshold from the calibration half; AUC and balanced accuracy on the held-out half."""
    yc = np.array([r["label"] for r in calib])
    yh = np.array([r["label"] for r in held])
    cc, ch = columns(calib, calib_scored, weights), columns(held, held_scored, weights)
    out = []
    for name in cc:
        t = best_threshold(cc[name], yc)
        out.append({"signal": name, "threshold": round(t, 4), "auc": round(auc(ch[name], yh), 3),
                    "balanced_accuracy": round(balanced_accuracy(ch[name], yh, t), 3)})
    return out


def by_category(held: list[dict], held_scored, weights: dict) -> list[dict]:
    """Held-out accuracy of `consistency` at the calibration threshold, per category of the labelled set."""
    consistency = columns(held, held_scored, weights)["consistency"]
    out = []
    for category in sorted({r["category"] for r in held}):
        idx = [i for i, r in enumerate(held) if r["category"] == category]
        right = sum((consistency[i] >= weights["threshold"]) == bool(held[i]["label"]) for i in idx)
        out.append({"category": category, "label": held[idx[0]]["label"], "n": len(idx), "correct": int(right)})
    return out


def format_categories(rows: list[dict]) -> str:
    lines = ["| category | label | held-out rows | classified right at the threshold |", "|---|---|---|---|"]
    lines += [f"| {r['category']} | {r['label']} | {r['n']} | {r['correct']} |" for r in rows]
    return "\n".join(lines)


def format_table(rows: list[dict], n_calib: int, n_held: int) -> str:
    lines = [f"held-out half: {n_held} rows (calibration half: {n_calib} rows)", "",
             "| signal | ROC AUC | balanced accuracy | threshold (from calibration half) |",
             "|---|---|---|---|"]
    lines += [f"| {r['signal']} | {r['auc']:.3f} | {r['balanced_accuracy']:.3f} | {r['threshold']:.3f} |" for r in rows]
    return "\n".join(lines)


def calibrate(labels_path: str | Path, out: str | Path | None = None, scorer: Scorer | None = None) -> dict:
    """Fit on the calibration half, measure on the held-out half, write weights.json; returns it."""
    rows = read_labels(labels_path)
    calib, held = split(rows)
    scorer = scorer or Scorer(weights=False)
    calib_scored, held_scored = scorer.signals(label_rows(calib)), scorer.signals(label_rows(held))
    weights = fit(calib, calib_scored)
    rows_table = table(calib, calib_scored, held, held_scored, weights)
    thresholds = {r["signal"]: r["threshold"] for r in rows_table}
    weights.update(
        threshold=thresholds["consistency"],
        labels=str(labels_path),
        labels_sha256=hashlib.sha256(Path(labels_path).read_bytes()).hexdigest(),
        split={"calibration": len(calib), "heldout": len(held),
               "rule": "within each category, alternate rows in sha256(id) order"},
        heldout=rows_table,
    )
    weights["heldout_by_category"] = by_category(held, held_scored, weights)
    if out:
        Path(out).write_text(json.dumps(weights, indent=2) + "\n", encoding="utf-8")
    print(format_table(rows_table, len(calib), len(held)))
    print()
    print(format_categories(weights["heldout_by_category"]))
    return weights
