"""Data audit (`groundtune audit`): what the user's reference answers claim that the passage does not say.

A model tuned on these pairs learns those claims too, so the user should see them before training or
publishing. Each answer is checked against the source passage alone with the scorer's own signals:
numbers and names that do not occur in the passage, and sentences and clauses with weak support.
`audit_pairs` returns JSON-serialisable findings (the publish step records them); `format_findings`
prints them for people.
"""

from __future__ import annotations

from groundtune.evaluation.score import Row, Scorer
from groundtune.readers import Pair

CLAUSE_THRESHOLD = 0.45
"""A clause whose support (mean of content-word precision and MiniLM cosine) is below this is reported."""


def audit_pairs(pairs: list[Pair], scorer: Scorer | None = None) -> list[dict]:
    """One finding per pair whose answer makes claims the passage does not support (others are left out)."""
    scorer = scorer or Scorer(weights=False)
    rows = [Row(p.where, p.answer, None, p.source, p.question) for p in pairs]
    findings = []
    for p, s in zip(pairs, scorer.signals(rows)):
        flags = s["flags"]
        clause = flags["weakest_clause"]
        finding = {
            "origin": p.where,
            "question": p.question,
            "answer": p.answer,
            "unsupported_numbers": flags["unsupported_numbers"],
            "unsupported_names": flags["unsupported_names"],
            "unsupported_sentences": flags["unsupported_sentences"],
            "unsupported_clause": clause if clause and clause["support"] < CLAUSE_THRESHOLD else None,
        }
        if any(finding[k] for k in ("unsupported_numbers", "unsupported_names", "unsupported_sentences",
                                    "unsupported_clause")):
            findings.append(finding)
    return findings


def format_findings(findings: list[dict], n_pairs: int) -> str:
    lines = []
    for f in findings:
        lines.append(f"{f['origin']}: {f['question']}")
        for key, label in (("unsupported_numbers", "number"), ("unsupported_names", "name")):
            for span in f[key]:
                lines.append(f"  {label} not in the passage: {span['text']!r} (chars {span['start']}-{span['end']})")
        for span in f["unsupported_sentences"]:
            lines.append(f"  weakly supported sentence ({span['support']:.2f}): {span['text']!r}")
        if f["unsupported_clause"]:
            c = f["unsupported_clause"]
            lines.append(f"  weakly supported clause ({c['support']:.2f}): {c['text'].strip(' ,;')!r}")
    lines.append(f"{len(findings)} of {n_pairs} answers claim something the passage does not support")
    return "\n".join(lines)


def audit(cfg) -> list[dict]:
    """`groundtune audit`: read the configured pairs, print the findings, return them."""
    from groundtune.readers import read_pairs

    pairs = read_pairs(cfg)
    findings = audit_pairs(pairs)
    print(format_findings(findings, len(pairs)))
    return findings
