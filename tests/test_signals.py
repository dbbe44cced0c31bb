"""Each signal catches its own kind of error on hand-made examples (no embedding model needed here)."""

import pytest

from groundtune.evaluation import signals as sig
from groundtune.evaluation.text import abstention_span, content_stems, names, numbers

SOURCE = ("Rutte welcomed Germany's decision to provide Ukraine with two additional Patriot missile systems. "
          "Rutte noted consequences of U.S. secondary sanctions on countries like China if Russia fails to "
          "negotiate peace. He advocated a 400% increase in air and missile defense. The council voted 31 to 14.")


def aligned_to(answer: str, evidence: str) -> list[sig.Aligned]:
    """The answer as one sentence aligned to `evidence` (what `align` would pick, without MiniLM)."""
    unit = sig.Unit(evidence, "source", frozenset(content_stems(evidence)))
    return [sig.Aligned(answer, 0, len(answer), unit, 1.0, 1.0)]


@pytest.mark.parametrize("text, values", [
    ("two systems", [2]), ("2 systems", [2]), ("400%", [400]), ("400 percent", [400]),
    ("four hundred per cent", [400]), ("twenty-five", [25]), ("1,000 troops", [1000]),
    ("2.5 million euros", [2_500_000]), ("three fifths", [0.6]), ("one of the allies", []), ("the third man", []),
])
def test_numbers_are_normalised(text, values):
    assert [n.value for n in numbers(text)] == values


def test_percent_forms_are_one_number():
    assert numbers("400%")[0].values() == numbers("400 percent")[0].values()
    assert numbers("three fifths")[0].values() & numbers("60 percent")[0].values()
    assert sig.number_precision("a 400 percent rise", "a 400% rise")[0] == 1.0
    assert sig.number_precision("four more systems", "a 400% rise")[0] == 0.0


def test_number_precision_catches_a_changed_number_only():
    assert sig.number_precision("Germany sends 2 Patriot systems.", SOURCE) == (1.0, [])
    assert sig.number_precision("A four hundred percent increase.", SOURCE)[0] == 1.0
    score, missing = sig.number_precision("Germany sends three Patriot systems.", SOURCE)
    assert score == 0.0 and [m["text"] for m in missing] == ["three"]
    assert missing[0]["start"] == len("Germany sends ")
    assert sig.number_precision("It passed by 17 votes.", SOURCE)[0] == 1.0, "31 - 14, same sentence"


def test_entity_precision_catches_a_swapped_name():
    assert sig.entity_precision("Rutte welcomed Germany's Patriot decision for Ukraine.", SOURCE) == (1.0, [])
    score, missing = sig.entity_precision("Rutte welcomed France's Patriot decision.", SOURCE)
    assert [m["text"] for m in missing] == ["France"] and score < 1.0
    assert sig.entity_precision("Ukrainian air defense needs United States weapons.", SOURCE)[0] == 1.0
    assert sig.entity_precision("Sanctions could hit Brazil and India.", SOURCE)[1][0]["text"] == "Brazil"


def test_sentence_initial_words_are_not_names_but_acronyms_are():
    assert [n.text for n in names("Positively. Anyone who bought it may return it.")] == []
    assert [n.text for n in names("NATO agreed. During the talks, Rutte spoke.")] == ["NATO", "Rutte"]
    assert [n.text for n in names("Germany's Patriot systems")] == ["Germany", "Patriot"]


@pytest.mark.parametrize("answer", [
    "The source does not say.", "The passage doesn't mention oil prices.", "Ticket prices aren't covered in the passage.",
    "No date is given in the text.", "The passage does not explicitly state which country.", "Unknown from this passage.", "The text only refers to \"U.S. weapons\" in "
    "general and does not list any specific systems.", "The source says nothing about the share price.",
])
def test_abstention_is_detected(answer):
    assert abstention_span(answer) is not None


@pytest.mark.parametrize("answer", ["No serious injuries were reported.", "Rutte did not attend.",
                                    "Germany provides two systems."])
def test_statements_are_not_abstentions(answer):
    assert abstention_span(answer) is None


@pytest.mark.parametrize("answer, evidence", [
    ("Rutte criticized Germany's decision to provide Ukraine with Patriot systems.",
     "Rutte welcomed Germany's decision to provide Ukraine with two additional Patriot missile systems."),
    ("He advocated a 400% cut in air and missile defense.", "He advocated a 400% increase in air and missile defense."),
    ("Sanctions may follow if Russia agrees to negotiate peace.", "Sanctions may follow if Russia fails to negotiate peace."),
    ("They argued the budget had dropped by 35%.", "They argued the budget had risen by 35%."),
    ("The government pays 60 percent unless construction starts in 2027.",
     "The government pays 60 percent, provided that construction starts in 2027."),
])
def test_polarity_flip_is_caught(answer, evidence):
    flips = sig.polarity_flips(aligned_to(answer, evidence))
    assert len(flips) == 1 and flips[0]["evidence"] == evidence


@pytest.mark.parametrize("answer, evidence", [
    ("Rutte praised Germany's choice to give Ukraine two more Patriot systems.",
     "Rutte welcomed Germany's decision to provide Ukraine with two additional Patriot missile systems."),
    ("Sanctions may follow if Russia refuses to negotiate peace.", "Sanctions may follow if Russia fails to negotiate peace."),
    ("He wants air defense to grow by 400%.", "He advocated a 400% increase in air and missile defense."),
])
def test_faithful_paraphrase_is_not_a_polarity_flip(answer, evidence):
    assert sig.polarity_flips(aligned_to(answer, evidence)) == []


def test_role_swap_and_substitution_are_caught_but_not_passive_voice():
    evidence = "Rutte welcomed Germany's decision to provide Ukraine with two Patriot systems."
    swap = sig.role_flips(aligned_to("Germany welcomed Rutte's decision to provide Ukraine with two Patriot systems.",
                                     evidence))
    assert swap and swap[0]["answer"] == ["Germany", "Rutte"]
    passive = "Germany's decision was welcomed by Rutte."
    assert sig.role_flips(aligned_to(passive, evidence)) == []
    far = sig.role_flips(aligned_to("Ukraine needs help against Russian aggression.",
                                    "Russian attacks go on; the allies keep sending help to Ukraine."))
    assert far == [], "names far from the shared word are not a swap"
    actor = sig.role_flips(aligned_to("Sanctions may hit China if Ukraine fails to negotiate peace.",
                                      "Sanctions may hit China if Russia fails to negotiate peace."))
    assert actor and actor[0]["answer"] == ["Ukraine"] and actor[0]["evidence"] == ["Russia"]


def test_token_scores_use_squad_normalisation():
    assert sig.token_scores("The two systems!", "two systems") == (1.0, 1.0)
    recall, f1 = sig.token_scores("two", "two systems")
    assert recall == 0.5 and f1 == pytest.approx(2 / 3)
    assert sig.token_scores("", "two systems") == (0.0, 0.0)


def test_rouge_l_against_the_reference():
    assert sig.rouge_l("Germany provides two systems.", "Germany provides two systems.") == pytest.approx(1.0)
    assert sig.rouge_l("Cats sleep.", "Germany provides two systems.") == 0.0


def test_clauses_split_an_added_claim_off():
    answer = "Lars apologised, said the thermostat failed, and announced that the company would end its contract."
    clauses = [answer[a:b] for a, b in sig.clause_spans(answer)]
    assert clauses[-1].startswith(", and announced") and len(clauses) == 2
