"""The source check: withhold an answer that names a number or a name the source does not give.

A 135M model tuned on a few pairs still invents details on questions its source does not answer ("approximately
200 Patriot systems"). The check compares each number and name of an answer with the evidence a user has: the
source passage and the user's own answers (never a test set's references). An answer with a number or name
found in neither is replaced by the abstention answer (`data.abstain_answer`); an answer that already abstains is
kept as it is. The number and name rules are the evaluation harness's (`signals.number_precision`,
`signals.entity_precision`: "31 to 14" supports "17", "Rutte" supports "Mark Rutte's" ...).

It is a filter on text, so it applies wherever groundtune answers (`groundtune ask --source-check`,
`eval.source_check`) and to `pipeline` output through `SourceCheck.from_dir(model_dir).apply(answer)`;
`pipeline` alone does not run it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from groundtune.evaluation.signals import entity_precision, number_precision
from groundtune.evaluation.text import abstention_span


def unsupported_claims(answer: str, evidence: str) -> list[dict]:
    """The answer's numbers and names found nowhere in `evidence`, as character spans of the answer."""
    return number_precision(answer, evidence)[1] + entity_precision(answer, evidence)[1]


@dataclass
class SourceCheck:
    """The evidence answers are checked against, and the answer given instead of an unsupported one."""

    source: str
    user_answers: tuple[str, ...] = ()
    abstain_answer: str = "The source does not say."

    @cached_property
    def evidence(self) -> str:
        return "\n".join([self.source, *self.user_answers])

    @classmethod
    def from_dir(cls, run_folder: str | Path) -> "SourceCheck":
        """The check of a groundtune run folder: its passage, the user's answers and its abstention answer."""
        from groundtune.config import load_run_config
        from groundtune.errors import GroundtuneError
        from groundtune.evaluation.harness import run_source, train_questions

        folder = Path(run_folder)
        if not (folder / "dataset" / "dataset_dict.json").is_file():
            raise GroundtuneError("the source check needs a groundtune run folder (with dataset/)", folder)
        source = run_source(folder)
        if source is None:
            raise GroundtuneError("the run was trained on several passages; the source check takes one", folder)
        config = folder / "config.yaml"
        abstain = load_run_config(config).data.abstain_answer if config.is_file() else cls.abstain_answer
        return cls(source, tuple(q.reference for q in train_questions(folder)), abstain)

    def flags(self, answer: str) -> list[dict]:
        """What the check finds unsupported in `answer` (empty for an abstention)."""
        return [] if abstention_span(answer) else unsupported_claims(answer, self.evidence)

    def apply(self, answer: str) -> str:
        """`answer`, or the abstention answer when it names a number or name the evidence lacks."""
        return self.abstain_answer if self.flags(answer) else answer
