"""`consistency`: does an answer say what its reference and source say, and nothing else.

Entry points: `Scorer.score(rows)` (rows of answer / reference / source) and `score_file` behind
`groundtune score`. The signals are computed in groundtune.evaluation.signals; here they are put
together. The combination is a logistic regression fitted on the calibration half of the hand-labelled
set (`groundtune calibrate`, shipped as weights.json next to this file), with one rule on top:

* answer and reference both abstain ("the source does not say"): consistency 1;
* exactly one of them abstains: consistency 0 (a refusal, or an invented answer to an unanswerable question);
* an empty answer: consistency 0.

Each output row: `{"id", "consistency", "abstained", "signals": {name: value}, "flags": {...}}` where
flags hold the spans (character offsets into the answer) of unsupported numbers, names and sentences,
polarity and role flips, and the abstention phrase.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from groundtune.errors import GroundtuneError
from groundtune.evaluation import signals as sig
from groundtune.evaluation.embed import Embedder, NLIChecker
from groundtune.evaluation.text import abstention_span, sentence_spans

WEIGHTS = Path(__file__).with_name("weights.json")
SIGNALS = ("support", "clause_support", "number_precision", "entity_precision", "polarity", "role", "token_recall", "token_f1",
           "rougeL", "semantic")
"""Every signal reported per row (plus `nli` when an NLI model is given)."""
SUPPORT_THRESHOLD = 0.5
"""An answer sentence whose support (mean of content-word precision and MiniLM cosine) is below this is flagged."""
ROW_FIELDS = {"id", "answer", "reference", "question", "source"}


@dataclass
class Row:
    """One answer to score."""

    id: str
    answer: str
    reference: str | None
    source: str | None = None
    question: str | None = None


def load_weights(path: str | Path | None = None) -> dict:
    """The calibrated combination (see groundtune.evaluation.calibrate)."""
    path = Path(path) if path else WEIGHTS
    if not path.is_file():
        raise GroundtuneError("no consistency weights; run `groundtune calibrate --labels "
                              "tests/data/consistency_labels.jsonl --out src/groundtune/evaluation/weights.json`", path)
    return json.loads(path.read_text(encoding="utf-8"))


def logistic(values: dict[str, float], weights: dict) -> float:
    """P(consistent) from the standardised features of weights.json (a missing signal counts as average)."""
    z = weights["intercept"]
    for name, coef, mean, scale in zip(weights["features"], weights["coef"], weights["mean"], weights["scale"]):
        z += coef * (values.get(name, mean) - mean) / scale
    return 1.0 / (1.0 + math.exp(-z))


def combine(signals: dict[str, float], abstained: bool, reference_abstains: bool, weights: dict,
            empty: bool = False) -> float:
    """consistency in [0, 1]: 0 for an empty answer, the abstention rule, else the fitted logistic regression."""
    if empty:
        return 0.0
    if abstained or reference_abstains:
        return 1.0 if abstained and reference_abstains else 0.0
    return round(logistic(signals, weights), 4)


class Scorer:
    """Scores answers; loads MiniLM once (and an optional NLI model) and embeds in batches."""

    def __init__(self, weights: dict | str | Path | bool | None = None, embedder: Embedder | None = None,
                 nli_model: str | Path | None = None, device: str = "cpu"):
        """weights: None = the shipped weights.json, a path or a dict; False = signals only (for calibration)."""
        self.weights = None if weights is False else weights if isinstance(weights, dict) else load_weights(weights)
        self.embedder = embedder or Embedder(device=device)
        self.nli = NLIChecker(nli_model, device=device) if nli_model else None

    def signals(self, rows: list[Row]) -> list[dict]:
        """Signals and flags per row (no combination): what calibration fits on."""
        self._warm(rows)
        return [self._row_signals(r) for r in rows]

    def score(self, rows: list[Row]) -> list[dict]:
        if self.weights is None:
            raise GroundtuneError("this Scorer was made with weights=False (signals only); it cannot combine them")
        out = []
        for r, s in zip(rows, self.signals(rows)):
            ref_abstains = bool(r.reference) and abstention_span(r.reference) is not None
            consistency = combine(s["signals"], s["abstained"], ref_abstains, self.weights, empty=not r.answer.strip())
            out.append({"id": r.id, "consistency": consistency, **s})
        return out

    # ----------------------------------------------------------------------------------------------

    def _units(self, r: Row) -> list[sig.Unit]:
        units = sig.evidence_units(r.source, "source") if r.source else []
        return units + (sig.evidence_units(r.reference, "reference") if r.reference else [])

    def _warm(self, rows: list[Row]) -> None:
        """Embed every text the rows need in one batched pass."""
        texts = []
        for r in rows:
            texts += [r.answer[s:e] for s, e in sentence_spans(r.answer)]
            texts += [r.answer[a:b].strip(" ,;:") for a, b in sig.clause_spans(r.answer)]
            texts += [u.text for u in self._units(r)]
            if r.reference:
                texts += [r.answer, r.reference]
        self.embedder.warm(texts)

    def _row_signals(self, r: Row) -> dict:
        evidence = " ".join(t for t in (r.source, r.reference) if t)
        units = self._units(r)
        aligned = sig.align(r.answer, units, self.embedder)
        clause, weakest_clause = sig.clause_support(r.answer, units, self.embedder)
        numbers, bad_numbers = sig.number_precision(r.answer, evidence)
        entities, bad_names = sig.entity_precision(r.answer, evidence)
        polarity, roles = sig.polarity_flips(aligned), sig.role_flips(aligned)
        values = {
            "support": sig.support(aligned) if r.answer.strip() else 0.0,
            "clause_support": clause if r.answer.strip() else 0.0,
            "number_precision": numbers,
            "entity_precision": entities,
            "polarity": 0.0 if polarity else 1.0,
            "role": 0.0 if roles else 1.0,
        }
        if r.reference is not None:
            recall, f1 = sig.token_scores(r.answer, r.reference)
            values.update(token_recall=recall, token_f1=f1, rougeL=sig.rouge_l(r.answer, r.reference),
                          semantic=self.embedder.cosine(r.answer, r.reference) if r.answer.strip() else 0.0)
        if self.nli is not None:
            values["nli"] = self._nli(aligned)
        abstention = abstention_span(r.answer)
        flags = {
            "unsupported_numbers": bad_numbers,
            "unsupported_names": bad_names,
            "unsupported_sentences": [
                {"text": a.text, "start": a.start, "end": a.end, "support": round(a.support, 3),
                 "evidence": a.unit.text if a.unit else None}
                for a in aligned if a.support < SUPPORT_THRESHOLD],
            "weakest_clause": weakest_clause,
            "polarity_flips": polarity,
            "role_flips": roles,
            "abstention": abstention,
        }
        return {"abstained": abstention is not None, "signals": {k: round(v, 4) for k, v in values.items()},
                "flags": flags}

    def _nli(self, aligned: list[sig.Aligned]) -> float:
        pairs = [(a.unit.text, a.text) for a in aligned if a.unit is not None]
        if not pairs:
            return 1.0
        return min(self.nli([p for p, _ in pairs], [h for _, h in pairs]))


# --------------------------------------------------------------------------------------------------
# Files (groundtune score)


def read_rows(path: str | Path, source: str | None = None) -> list[Row]:
    """JSONL rows {"id", "answer", "reference", "question"?, "source"?}; `source` fills rows without one."""
    from groundtune.readers import json_objects

    rows = []
    for lineno, rec in json_objects(path):
        for key in ("answer", "reference"):
            if not isinstance(rec.get(key), str):
                raise GroundtuneError(f"field {key!r} must be a string", path, lineno)
        rows.append(Row(str(rec.get("id", lineno)), rec["answer"], rec["reference"],
                        rec.get("source") or source, rec.get("question")))
    if not rows:
        raise GroundtuneError("no rows to score", path)
    return rows


def score_file(path: str | Path, source_path: str | Path | None = None, out: str | Path | None = None,
               nli_model: str | None = None) -> list[dict]:
    """`groundtune score`: one JSON line per row, to `out` or stdout."""
    import sys

    from groundtune.readers import read_source

    source = read_source(source_path) if source_path else None
    rows = read_rows(path, source)
    results = Scorer(nli_model=nli_model).score(rows)
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in results)
    if out:
        Path(out).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return results
