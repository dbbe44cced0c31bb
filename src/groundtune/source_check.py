"""The source check: withhold an answer that names a number or a name the source does not give, or that answers a
question about a name the source never mentions.

A 135M model tuned on a few pairs still invents details on questions its source does not answer ("approximately
200 Patriot systems"). The check compares each number and name of an answer with the evidence a user has: the
source passage and the user's own answers (never a test set's references). An answer with a number or name
found in neither is replaced by the abstention answer (`data.abstain_answer`); an answer that already abstains is
kept as it is. The number and name rules are the evaluation harness's (`signals.number_precision`,
`signals.entity_precision`: "31 to 14" supports "17", "Rutte" supports "Mark Rutte's" ...).

Given the question too, the check also withholds an answer to a question that asks about a name the evidence never
mentions ("What share of GDP ...?", "How did Zelensky respond ...?"): the model's usual mistake there is an
on-topic passage sentence, which holds no unsupported name itself. A country's capital, demonym or seat of
government counts as a mention of the country ("Berlin" for Germany, "the Kremlin" for Russia), and numbers in
a question are left alone (a wrong number is a false premise to correct, not a topic the source lacks).

It is a filter on text, so it applies wherever groundtune answers (`groundtune ask --source-check`,
`eval.source_check`) and to `pipeline` output through `SourceCheck.from_dir(model_dir).apply(answer, question)`;
`pipeline` alone does not run it. Every run folder carries its evidence in `source_check.json` (written by
`save_run`, published under `groundtune/`), so `from_dir` works on a Hub download too.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from groundtune.errors import GroundtuneError
from groundtune.evaluation.signals import entity_precision, number_precision
from groundtune.evaluation.text import abstention_span, name_key, name_vocabulary, names
from groundtune.questions import COUNTRIES, QUESTION_WORDS, country_forms

# Seats of government written for the country ("the Kremlin said ..."): a mention of it, like its capital.
SEATS = {"Kremlin": "Russia", "White House": "United States", "Pentagon": "United States",
         "Downing Street": "United Kingdom", "Elysee": "France", "Élysée": "France", "Bundestag": "Germany"}


def unsupported_claims(answer: str, evidence: str) -> list[dict]:
    """The answer's numbers and names found nowhere in `evidence`, as character spans of the answer."""
    return number_precision(answer, evidence)[1] + entity_precision(answer, evidence)[1]


def mention_vocabulary(evidence: str) -> set[str]:
    """Name keys (`text.name_key`) that count as mentioned by `evidence`: its own words, plus every form of each
    country it names (name, capital, demonym, seat of government: "Berlin" is a mention of Germany)."""
    vocab = set(name_vocabulary(evidence))
    capitals = {COUNTRIES[c][0] for c in country_forms(evidence)}  # "U.S." and "United States" share Washington
    forms = [f for c in COUNTRIES if COUNTRIES[c][0] in capitals for f in (c, *COUNTRIES[c])]
    forms += [seat for seat, c in SEATS.items() if COUNTRIES[c][0] in capitals]
    return vocab | {name_key(w) for f in forms for w in f.split()}


def unmentioned_names(question: str, vocabulary: set[str]) -> list[dict]:
    """The names a question asks about that `vocabulary` (`mention_vocabulary`) lacks, as spans of the question.
    The question's first word is not read as a name ("Besides China, ...", "What's ..."): questions open with
    capitalised common words far more often than with a name."""
    out = []
    for name in names(question):
        keys = name.keys
        if name.start == 0:
            keys = keys[1:]
        if not keys or name.text.lower().split("'")[0].split("’")[0] in QUESTION_WORDS:
            continue
        if not set(keys) <= vocabulary:
            out.append({**name.span(), "in": "question"})
    return out


FILE = "source_check.json"  # in a run folder; a published repository has it under groundtune/
PLACES = (FILE, f"groundtune/{FILE}")


@dataclass
class SourceCheck:
    """The evidence answers are checked against, and the answer given instead of an unsupported one."""

    source: str
    user_answers: tuple[str, ...] = ()
    abstain_answer: str = "The source does not say."

    @cached_property
    def evidence(self) -> str:
        return "\n".join([self.source, *self.user_answers])

    @cached_property
    def mentioned(self) -> set[str]:
        return mention_vocabulary(self.evidence)

    @classmethod
    def from_dir(cls, folder: str | Path) -> "SourceCheck":
        """The check of a groundtune model folder (`find`); a folder without evidence is a one-line error."""
        from groundtune.runs import is_run_folder

        check = cls.find(folder)
        if check is not None:
            return check
        if is_run_folder(folder):
            raise GroundtuneError("the run was trained on several passages; the source check takes one", folder)
        raise GroundtuneError(f"the source check needs a groundtune run folder or a model folder with {FILE}", folder)

    @classmethod
    def find(cls, folder: str | Path) -> "SourceCheck | None":
        """The check of a groundtune model folder: its `source_check.json` (a run folder, or a published repository
        downloaded with `huggingface_hub.snapshot_download`), or else the passage and user pairs of its dataset/
        (run folders written before the file existed); None where it has neither, or a run on several passages
        (the check, like the chat template, takes one passage)."""
        from groundtune.config import load_run_config
        from groundtune.evaluation.harness import run_source, train_questions
        from groundtune.runs import is_run_folder

        folder = Path(folder)
        for place in PLACES:
            if (folder / place).is_file():
                return cls.read(folder / place)
        source = run_source(folder) if is_run_folder(folder) else None
        if source is None:
            return None
        abstain = load_run_config(folder / "config.yaml").data.abstain_answer
        return cls(source, tuple(q.reference for q in train_questions(folder)), abstain)

    def to_json(self) -> dict:
        return {"source": self.source, "user_answers": list(self.user_answers), "abstain_answer": self.abstain_answer}

    def write(self, path: Path) -> None:
        from groundtune.runs import write_json

        write_json(path, self.to_json())

    @classmethod
    def read(cls, path: Path) -> "SourceCheck":
        """A check written by `write`; a malformed file is named in a one-line error."""
        import json

        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise GroundtuneError(f"the source check file is not valid JSON: {e.msg}", path, e.lineno) from None
        except (OSError, UnicodeDecodeError) as e:
            raise GroundtuneError(f"cannot read the source check file: {e}", path) from None
        ok = (isinstance(data, dict) and isinstance(data.get("source"), str) and data["source"].strip()
              and isinstance(data.get("user_answers"), list) and all(isinstance(a, str) for a in data["user_answers"])
              and isinstance(data.get("abstain_answer"), str) and data["abstain_answer"].strip())
        if not ok:
            raise GroundtuneError("a source check file needs a non-empty 'source', a list of strings 'user_answers' "
                                  "and a non-empty 'abstain_answer'", path)
        return cls(data["source"], tuple(data["user_answers"]), data["abstain_answer"])

    def flags(self, answer: str, question: str | None = None) -> list[dict]:
        """What the check finds unsupported (empty for an abstention): spans of `answer`, then, given the
        question, spans of `question` (marked "in": "question") naming what the evidence never mentions."""
        if abstention_span(answer):
            return []
        asked = unmentioned_names(question, self.mentioned) if question else []
        return unsupported_claims(answer, self.evidence) + asked

    def apply(self, answer: str, question: str | None = None) -> str:
        """`answer`, or the abstention answer when it names a number or name the evidence lacks, or answers a
        question about a name the evidence never mentions. The abstention does not repeat the name: "...; it does
        not mention GDP." would itself name what the source lacks, which the harness counts as unsupported."""
        return self.abstain_answer if self.flags(answer, question) else answer
