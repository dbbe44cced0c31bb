"""The source check (groundtune.source_check): which answers it withholds, and where its evidence comes from."""

import pytest

from groundtune.errors import GroundtuneError
from groundtune.source_check import SourceCheck, unsupported_claims

SOURCE = ("Rutte welcomed Germany's decision to provide Ukraine with two additional Patriot missile systems. "
          "He advocated a 400% increase in air and missile defense.")
USER = ("All 32 NATO member countries have confirmed Ukraine's path to NATO membership.",)
CHECK = SourceCheck(SOURCE, USER, "The source does not say.")


@pytest.mark.parametrize("answer", [
    "Germany will provide two additional Patriot missile systems.",
    "Rutte advocated a 400% increase in air and missile defense.",
    "Rutte said all 32 NATO members confirmed the path.",            # a number only the user's answer gives
    "Germany provides 2 Patriot systems.",                           # digits for a number word of the source
    "He welcomed the decision.",                                     # no number, no name
])
def test_supported_answers_pass_unchanged(answer):
    assert CHECK.flags(answer) == [] and CHECK.apply(answer) == answer


@pytest.mark.parametrize("answer, claim", [
    ("Germany will provide approximately 200 Patriot systems.", "200"),
    ("Rutte met Japan's prime minister to discuss Patriot systems.", "Japan"),
    ("The decision was taken in 2019.", "2019"),
])
def test_an_invented_number_or_name_is_withheld(answer, claim):
    flags = CHECK.flags(answer)
    assert [answer[f["start"]:f["end"]] for f in flags] == [claim]
    assert CHECK.apply(answer) == "The source does not say."


def test_abstentions_are_kept_even_when_they_name_what_is_missing():
    answer = "The source does not say; it does not mention Japan."
    assert unsupported_claims(answer, SOURCE)  # the name is flagged by the harness rule ...
    assert CHECK.apply(answer) == answer      # ... but the answer already abstains


def test_test_set_references_are_not_evidence():
    """Only the passage and the user's answers count: a fact of no user answer is withheld."""
    answer = "Rutte spoke in Brussels."
    assert SourceCheck(SOURCE).apply(answer) == "The source does not say."
    assert SourceCheck(SOURCE, ("Rutte spoke in Brussels.",)).apply(answer) == answer


def test_from_dir_reads_passage_user_answers_and_abstention(tiny_run_folder):
    check = SourceCheck.from_dir(tiny_run_folder)
    assert check.source.startswith("NATO Secretary General Mark Rutte")
    assert len(check.user_answers) == 9 and "32 NATO member countries" in check.evidence
    assert check.abstain_answer.startswith("The source does not say")


def test_from_dir_names_a_folder_without_dataset(tmp_path):
    with pytest.raises(GroundtuneError, match="needs a groundtune run folder") as err:
        SourceCheck.from_dir(tmp_path)
    assert str(tmp_path) in str(err.value)


def test_ask_withholds_an_invented_answer_and_says_why(tiny_run_folder, monkeypatch, capsys):
    from groundtune.cli import main
    from groundtune.infer import Answerer

    invented = "Germany is sending 200 Patriot systems."
    monkeypatch.setattr(Answerer, "stream", lambda self, q, write=None: invented)
    assert main(["ask", "--model", str(tiny_run_folder), "How many Patriot systems?"]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == SourceCheck.from_dir(tiny_run_folder).abstain_answer
    assert "source check: withheld" in err and "'200'" in err
    assert main(["ask", "--model", str(tiny_run_folder), "--no-source-check", "How many?"]) == 0
    assert capsys.readouterr().out == ""  # unchecked answers stream through `write` (not called by the stub)
