"""groundtune's `consistency` as a Hugging Face `evaluate` module (offline; the scorer is groundtune's own).

    import evaluate
    metric = evaluate.load("metrics/groundtune_consistency")        # a local folder: nothing is downloaded
    metric.compute(predictions=answers, references=references, sources=passages)

Returns `consistency` (the mean), `mean_<signal>` for every signal, and `scores` and `rows` (one entry
per prediction, exactly what `groundtune score` writes). Needs groundtune installed.
"""

import datasets
import evaluate

from groundtune.evaluation.score import SIGNALS, Row, Scorer

_DESCRIPTION = """Does an answer say what its reference and source passage say, and nothing else? `consistency`
combines sentence support, number and name precision, polarity and role flips, token overlap, ROUGE-L
and MiniLM similarity, with weights fitted on half of a hand-labelled set (see groundtune's README)."""

_KWARGS_DESCRIPTION = """
Args:
    predictions (list of str): the answers to score.
    references (list of str): the reference answers.
    sources (list of str, optional): the source passage of each answer.
    source (str, optional): one source passage for every answer (instead of `sources`).
    questions (list of str, optional): the questions (recorded, not scored).
Returns:
    consistency (float): mean consistency in [0, 1].
    mean_<signal> (float): mean of each signal.
    scores (list of float): consistency per answer.
    rows (list of dict): per answer: consistency, signals, flags (spans of unsupported numbers, names, sentences).
Examples:
    >>> metric = evaluate.load("metrics/groundtune_consistency")
    >>> metric.compute(predictions=["Two."], references=["Germany gives two systems."],
    ...                sources=["Germany gives Ukraine two Patriot systems."])["scores"]
"""

_CITATION = ""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class GroundtuneConsistency(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("string"),
                                        "references": datasets.Value("string")}),
            homepage="https://github.com/groundtune/groundtune",
        )

    def _compute(self, predictions, references, sources=None, source=None, questions=None):
        if sources is None:
            sources = [source] * len(predictions)
        if len(sources) != len(predictions):
            raise ValueError(f"got {len(sources)} sources for {len(predictions)} predictions")
        questions = questions or [None] * len(predictions)
        if not hasattr(self, "_scorer"):
            self._scorer = Scorer()
        rows = [Row(str(i), p, r, s, q) for i, (p, r, s, q) in enumerate(zip(predictions, references, sources, questions))]
        scored = self._scorer.score(rows)
        out = {"consistency": sum(r["consistency"] for r in scored) / max(len(scored), 1)}
        for name in SIGNALS:
            values = [r["signals"][name] for r in scored if name in r["signals"]]
            out[f"mean_{name}"] = sum(values) / len(values) if values else None
        out["scores"] = [r["consistency"] for r in scored]
        out["rows"] = scored
        return out
