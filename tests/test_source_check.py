"""The source check (groundtune.source_check): which answers it withholds, and where its evidence comes from."""

import shutil

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


@pytest.mark.parametrize("question, withheld", [
    ("What share of GDP does Rutte want NATO countries to spend on defence?", True),  # GDP: nowhere in the evidence
    ("How did Zelensky respond to Germany's decision?", True),
    ("What did Rutte say about the Middle East?", True),
    ("Why does Berlin's decision matter to Kyiv?", False),        # capitals of countries the passage names
    ("How did the Kremlin react to the Patriot decision?", False),  # Russia's seat of government; Russia is named
    ("What's the range of a Patriot missile?", False),            # the opening word is no name
    ("Besides Germany, who sends Patriot systems?", False),
    ("Did Rutte call for a 40% increase?", False),                # a wrong number is a premise to correct
    ("How many NATO countries confirmed the path?", False),       # NATO: the user's answer names it
])
def test_a_question_about_a_name_the_evidence_never_mentions_is_not_answered(question, withheld):
    check = SourceCheck(SOURCE + " Russia was warned.", USER)
    answer = "Rutte advocated a 400% increase in air and missile defense."  # on topic, no unsupported name
    assert check.apply(answer) == answer  # without the question: nothing to see
    assert (check.apply(answer, question) == check.abstain_answer) is withheld
    flags = check.flags(answer, question)
    assert all(f["in"] == "question" and question[f["start"]:f["end"]] == f["text"] for f in flags)
    assert check.apply("The source does not say.", question) == "The source does not say."  # abstentions stay


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
    assert SourceCheck.find(tmp_path) is None


def test_the_run_folder_file_holds_what_its_dataset_gives(tiny_run_folder, tmp_path):
    """save_run writes source_check.json; it agrees with the passage and user pairs read back from dataset/, and
    a folder with only the file (a published repository has it under groundtune/) gives the same check."""
    from groundtune.source_check import FILE

    saved = SourceCheck.read(tiny_run_folder / FILE)
    older = shutil.copytree(tiny_run_folder, tmp_path / "older", ignore=shutil.ignore_patterns(FILE, "*.safetensors"))
    assert not (older / FILE).exists()  # a run folder from before the file: dataset/ only
    assert saved == SourceCheck.find(older) == SourceCheck.from_dir(tiny_run_folder)
    (tmp_path / "groundtune").mkdir()
    saved.write(tmp_path / "groundtune" / FILE)
    assert SourceCheck.find(tmp_path) == SourceCheck.from_dir(tmp_path) == saved


def test_a_run_on_several_passages_has_no_check_to_offer(tmp_path):
    """`ask` turns the check on by itself only where there is one passage to check against."""
    import datasets

    rows = [{"question": "Q?", "answer": "A.", "source": s, "kind": "user"} for s in ("One.", "Two.")]
    datasets.DatasetDict({"train": datasets.Dataset.from_list(rows)}).save_to_disk(str(tmp_path / "dataset"))
    (tmp_path / "config.yaml").write_text("seed: 1\n")
    assert SourceCheck.find(tmp_path) is None
    with pytest.raises(GroundtuneError, match="several passages"):
        SourceCheck.from_dir(tmp_path)


@pytest.mark.parametrize("text", ["{not json", '{"source": "", "user_answers": [], "abstain_answer": "No."}',
                                  '{"source": "S.", "user_answers": "one", "abstain_answer": "No."}', "[]"])
def test_a_malformed_source_check_file_is_named(tmp_path, text):
    from groundtune.source_check import FILE

    (tmp_path / FILE).write_text(text)
    with pytest.raises(GroundtuneError) as err:
        SourceCheck.from_dir(tmp_path)
    assert str(err.value).startswith(str(tmp_path / FILE)) and "\n" not in str(err.value)


def test_ask_withholds_an_invented_answer_and_says_why(tiny_run_folder, monkeypatch, capsys):
    from groundtune.cli import main
    from groundtune.infer import Answerer

    invented = "Germany is sending 200 Patriot systems."
    monkeypatch.setattr(Answerer, "stream", lambda self, q, write=None: invented)
    assert main(["ask", "--model", str(tiny_run_folder), "How many Patriot systems?"]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == SourceCheck.from_dir(tiny_run_folder).abstain_answer
    assert "source check: withheld" in err and "'200' in neither the passage nor your answers" in err
    monkeypatch.setattr(Answerer, "stream", lambda self, q, write=None: "Germany is sending two Patriot systems.")
    assert main(["ask", "--model", str(tiny_run_folder), "How did Zelensky react to the Patriots?"]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == SourceCheck.from_dir(tiny_run_folder).abstain_answer
    assert "the question asks about 'Zelensky', which neither mentions" in err
    assert main(["ask", "--model", str(tiny_run_folder), "--no-source-check", "How many?"]) == 0
    assert capsys.readouterr().out == ""  # unchecked answers stream through `write` (not called by the stub)
