import re

from groundtune.augment import (abstention_pairs, answer_sentence, augment, cloze_questions, evidence_pairs,
                                grounded_answer, main_entities, passage_covers, passage_pairs, reword, sentences)
from groundtune.config import AugmentConfig
from groundtune.readers import Pair, normalize_question, read_seed

from conftest import SEED

PAIRS = read_seed(SEED)
SOURCE = PAIRS[0].source
OTHER = ("The city council of Norvik approved a new tram line on Tuesday. Mayor Ines Holt said the line will "
         "cost 40 million euros. Construction starts in 2026 and takes 18 months.")


def test_sentences_keep_abbreviations_together():
    sents = sentences(SOURCE)
    assert len(sents) == 6 and any("U.S. secondary sanctions" in s for s in sents)


def test_answer_sentence_drops_discourse_markers_only():
    assert answer_sentence("Furthermore, Rutte spoke.") == "Rutte spoke."
    assert answer_sentence("In recent developments, Rutte welcomed it.") == "Rutte welcomed it."
    assert answer_sentence("Rutte spoke.") == "Rutte spoke."


def test_lead_ins_keep_the_time_phrase_in_answers_but_not_in_questions():
    assert answer_sentence("In recent developments, Rutte welcomed it.", lead_in=True) == (
        "In recent developments, Rutte welcomed it.")
    assert answer_sentence("Furthermore, in recent developments, Rutte spoke.", lead_in=True) == (
        "In recent developments, Rutte spoke.")
    pairs = passage_pairs(SOURCE, "x", lead_ins=True)
    patriot = [p for p in pairs if p.kind == "passage" and "Patriot" in p.answer]
    assert patriot and all(p.answer.removeprefix("Yes. ").removeprefix("No. ").startswith("In recent developments, ")
                           for p in patriot)
    assert not any("recent developments" in p.question for p in pairs)
    before = passage_pairs(SOURCE, "x")
    assert [p.question for p in before] == [p.question for p in pairs]  # the same questions, longer answers


def test_reword_keeps_the_question():
    out = reword("What is NATO's stance?", 3, offset=0)
    assert out == ["According to the source, what is NATO's stance?", "Based on the passage, what is NATO's stance?",
                   "Briefly, what is NATO's stance?"]
    assert reword("Who?", 0, 0) == []


def test_cloze_questions_ask_for_the_number_and_the_subject():
    qs = cloze_questions(sentences(SOURCE)[1])
    assert any("with how many additional Patriot missile systems" in q for q in qs)
    assert any(q.startswith("Who welcomed Germany's decision") for q in qs)
    assert any("advocating a what percentage increase" in q for q in cloze_questions(sentences(SOURCE)[4]))


def test_passage_answers_are_passage_sentences_or_abstentions():
    pairs = passage_pairs(SOURCE, "x")
    assert len(pairs) >= 40
    allowed = {answer_sentence(s) for s in sentences(SOURCE)}
    for p in pairs:
        title = re.fullmatch(r"(.+) is the (.+)\.", p.answer)
        if p.kind == "passage" and title and p.answer not in allowed:  # "Mark Rutte is the NATO Secretary General."
            assert f"{title.group(2)} {title.group(1)}" in SOURCE, p.answer
        elif p.kind == "passage":
            assert p.answer.removeprefix("Yes. ").removeprefix("No. ") in allowed, p.answer
        else:
            assert p.kind == "abstain" and p.answer.startswith("The source does not say;")
    assert any(p.answer.startswith("No. ") for p in pairs) and any(p.answer.startswith("Yes. ") for p in pairs)


def test_evidence_pairs_remove_exactly_the_answering_sentence():
    sents = sentences(SOURCE)
    pairs = evidence_pairs(SOURCE, "x", "The source does not say.", removed=2, kept=1)
    for p in pairs:
        assert p.context != SOURCE and len([s for s in sents if s not in p.context]) == 1
        missing = next(s for s in sents if s not in p.context)
        if p.kind == "abstain":
            assert p.answer == "The source does not say."
        else:
            shown = {answer_sentence(s) for s in sents if s in p.context}
            assert answer_sentence(missing) not in shown
            assert p.answer.removeprefix("Yes. ").removeprefix("No. ") in shown


def test_abstentions_skip_details_the_passage_has():
    qs = [p.question for p in abstention_pairs(OTHER, 30, "The source does not say.", "x")]
    assert not any("date" in q or "money" in q or "cost" in q or "months" in q for q in qs)
    rutte = [p for p in abstention_pairs(SOURCE, 30, "The source does not say.", "x")]
    assert any("date" in p.question for p in rutte) and any("cost" in p.question for p in rutte)
    assert all(p.answer.startswith("The source does not say;") for p in rutte)
    assert not any(w in p.question.lower() for p in rutte for w in ("ukraine's struggle", "patriot", "nato"))


def test_main_entities():
    assert main_entities(SOURCE) == ("Rutte", "Ukraine")


def test_grounded_answer_picks_the_supporting_sentence():
    patriot = PAIRS[5]
    assert "Patriot" in patriot.question
    assert grounded_answer(patriot.question, patriot.answer, SOURCE).startswith("Rutte welcomed Germany's decision")


def test_passage_covers_only_questions_a_sentence_speaks_to():
    covered = [passage_covers(p.question, SOURCE) for p in PAIRS]
    assert covered == [True, True, True, False, False, True, True, True, False]  # peace role, China, White House
    assert passage_covers("Which systems did Germany provide to Ukraine?", SOURCE)
    assert not passage_covers("What did Rutte say about the Arctic shipping routes?", SOURCE)


def test_grounded_rewordings_keep_the_user_answer_where_the_passage_is_silent():
    cfg = AugmentConfig(question_variants=2, seed_repeats=1, abstention=0, passage_questions=False,
                        missing_evidence=0, variant_answers="grounded")
    out = augment(PAIRS, cfg, "The source does not say.")
    for i, p in enumerate(PAIRS):
        answers = {v.answer for v in out if v.kind == "variant" and v.line == p.line}
        assert len(answers) == 1
        if i in (3, 4, 8):
            assert answers == {p.answer}
        else:
            assert answers <= {answer_sentence(s) for s in sentences(SOURCE)}, "a passage sentence"


def test_augment_counts_and_no_duplicate_questions():
    cfg = AugmentConfig(question_variants=2, seed_repeats=3, abstention=5, passage_questions=False,
                        missing_evidence=0)
    out = augment(PAIRS, cfg, "The source does not say.")
    kinds = [p.kind for p in out]
    assert kinds.count("user") == 27 and kinds.count("variant") == 18 and kinds.count("abstain") == 5
    added = [normalize_question(p.question) for p in out if p.kind != "user"]
    assert len(added) == len(set(added))
    assert out == augment(PAIRS, cfg, "The source does not say."), "deterministic"


def test_knowledge_questions_ask_about_countries_the_passage_names():
    rutte = abstention_pairs(SOURCE, 30, "The source does not say.", "x")
    known = [p for p in rutte if "currency" in p.question or "capital of" in p.question or "population" in p.question]
    assert known and all(p.answer.startswith("The source does not say; it does not give the ") for p in known)
    assert all(any(c in p.question for c in ("Germany", "Ukraine", "Russia", "China", "U.S.")) for p in known)
    assert any("U.S." in p.question for p in known), "a country written with a final period counts too"
    assert len({p.question.split(" of ")[-1] for p in known if " of " in p.question}) > 1, "spread over countries"
    capital = SOURCE + " Kyiv is the capital of Ukraine."
    assert not any("capital" in p.question for p in abstention_pairs(capital, 30, "The source does not say.", "x"))
    assert not any("currency" in p.question for p in abstention_pairs(OTHER, 30, "No.", "x")), "OTHER names no country"


def test_passage_orders_reorder_whole_sentences_and_keep_the_first_order():
    from groundtune.augment import reordered, with_orders
    text = "Alpha one. Beta two. Gamma three. Delta four."
    assert reordered(text, 0) == text
    for k in (1, 2, 3):
        again = reordered(text, k)
        assert again != text and sorted(sentences(again)) == sorted(sentences(text)) and again == reordered(text, k)
    pairs = [Pair(f"Q{i}?", "A.", text, "f.txt", 1) for i in range(4)]
    pairs[3] = Pair("Q3?", "A.", text, "f.txt", 1, context="Alpha one.")  # evidence removed: left alone
    shown = [p.context for p in with_orders(pairs, 2)]
    assert shown == [None, reordered(text, 1), None, "Alpha one."]


def test_swap_twins_ask_about_someone_neither_the_passage_nor_the_user_mentions():
    from groundtune.augment import swap_pairs
    from groundtune.questions import COUNTRIES, PEOPLE, country_forms
    known = " ".join(f"{p.question} {p.answer}" for p in PAIRS)
    passage = passage_pairs(SOURCE, "x", participles=True, keywords=4, factoids=True)
    twins = swap_pairs(SOURCE, passage, known, 40, "The source does not say.", "x")
    asked = {normalize_question(p.question) for p in passage}
    assert len(twins) == 40 and len({p.question for p in twins}) == 40
    named_in_data = {COUNTRIES[c][0] for c in country_forms(SOURCE + " " + known)}
    assert {"Beijing", "Brasilia", "New Delhi", "Taipei"} <= named_in_data  # China in the passage, the rest in user answers
    people = countries = 0
    for p in twins:
        assert p.kind == "abstain" and normalize_question(p.question) not in asked
        missing = re.fullmatch(r"The source does not say; it does not mention (?:the )?(.+)\.", p.answer).group(1)
        assert missing not in SOURCE + known
        if missing in COUNTRIES:
            countries += 1
            assert COUNTRIES[missing][0] not in named_in_data
            capitals = lambda text: {COUNTRIES[c][0] for c in country_forms(text)}  # noqa: E731 (Britain = United Kingdom)
            assert capitals(p.question) - capitals(SOURCE) == {COUNTRIES[missing][0]}  # the swapped-in country is asked about
        else:
            people += 1
            assert missing in PEOPLE and missing.split()[-1] in p.question
    assert people >= 10 and countries >= 10  # both kinds, in turns
    assert swap_pairs(SOURCE, passage, known, 0, "No.", "x") == []
    other = swap_pairs(OTHER, passage_pairs(OTHER, "x", factoids=True), "", 5, "No.", "x")  # no country: person twins only
    assert other and all(p.answer.removeprefix("No; it does not mention ").rstrip(".") in PEOPLE for p in other)


def test_augment_adds_the_swap_twins_only_when_asked():
    base = augment(PAIRS, AugmentConfig(swap_questions=0), "The source does not say.")
    more = augment(PAIRS, AugmentConfig(swap_questions=12), "The source does not say.")
    added = [p for p in more if p.path.endswith("#swap")]
    assert not any(p.path.endswith("#swap") for p in base) and len(added) == 12 and len(more) == len(base) + 12


def test_compound_questions_ask_two_things_and_get_both_sentences_in_order():
    from groundtune.augment import compound_pairs

    passage = passage_pairs(SOURCE, "x", participles=True, keywords=4, factoids=True)
    asked = {p.question: p for p in passage}
    pairs = compound_pairs(SOURCE, passage, 8, "x#compound")
    assert len(pairs) == 8 and compound_pairs(SOURCE, passage, 0, "x") == []
    used = set()
    for p in pairs:
        first, second = p.question.split(", and ")
        assert first[0].isupper() and second[0].islower() and p.question.endswith("?")
        a, b = asked[first + "?"], asked[second[0].upper() + second[1:]]
        assert a.line < b.line and p.answer == f"{a.answer} {b.answer}"  # two sentences, in passage order
        used |= {a.line, b.line}
    assert used == set(range(1, len(sentences(SOURCE)) + 1))  # neighbours first: every sentence takes part


def test_country_list_names_every_country_once_in_order_of_mention():
    from groundtune.questions import country_list_questions

    qs = country_list_questions(SOURCE)
    assert len(qs) == 3 and len({a for _, a in qs}) == 1
    assert qs[0][1] == "The source names Ukraine, Russia, Germany, the United States, China and Canada."  # Canadian allies
    assert country_list_questions(OTHER) == []  # no country at all
    assert country_list_questions("Germany said so.") == []  # one country is not a list


def test_unnamed_groups_are_asked_for_names_the_source_does_not_give():
    from groundtune.questions import unnamed_group_questions

    found = unnamed_group_questions(SOURCE)
    assert {g for _, g, _ in found} == {"Ukrainian officials"}
    assert sum(answerable for *_, answerable in found) == 1
    text = "Senior officials met in Rome. Polish and Dutch diplomats, including Anna Nowak, spoke. Officials like ours."
    assert {g for _, g, _ in unnamed_group_questions(text)} == {"officials"}  # one is named; "like" is no group


def test_list_questions_add_the_country_list_and_the_group_contrast():
    base = augment(PAIRS, AugmentConfig(), "The source does not say.")
    more = augment(PAIRS, AugmentConfig(list_questions=True), "The source does not say.")
    added = {p.question: p for p in more if p.path.endswith("#list")}
    assert len(more) == len(base) + len(added) == len(base) + 6
    names = added["What are the names of the Ukrainian officials?"]
    assert names.kind == "abstain" and names.answer == (
        "The source does not say; it does not name the Ukrainian officials.")
    about = added["What does the source say about the Ukrainian officials?"]
    assert about.kind == "passage" and about.answer == answer_sentence(sentences(SOURCE)[2])


def test_false_detail_twins_change_one_number_or_country_and_are_answered_no():
    from groundtune.augment import NUMBER
    from groundtune.questions import COUNTRIES, country_forms, false_detail_questions, wrong_number

    assert [wrong_number(x) for x in ("400%", "two", "Two", "18", "2,000", "abc")] == [
        "40%", "three", "Three", "180", "200", None]
    present = country_forms(SOURCE)
    assert false_detail_questions("Did Rutte advocate a 400% increase in air defense?", present, NUMBER) == [
        "Did Rutte advocate a 40% increase in air defense?"]
    twins = false_detail_questions("Did Rutte note U.S. secondary sanctions?", present, NUMBER)
    assert len(twins) == 1 and re.fullmatch(r"Did Rutte note (\w+) secondary sanctions\?", twins[0])
    assert twins[0].split()[3] in {adj for _, adj in COUNTRIES.values()}  # "U.S. sanctions" -> "German sanctions"
    assert false_detail_questions("Did Rutte speak?", present, NUMBER) == []

    yes = {p.question: p for p in passage_pairs(SOURCE, "x", false_details=True)}
    plain = {p.question for p in passage_pairs(SOURCE, "x")}
    added = [p for q, p in yes.items() if q not in plain]
    assert 4 <= len(added) <= 2 * len(sentences(SOURCE))
    for p in added:
        assert p.answer.startswith("No. ") and p.answer[4:] in {answer_sentence(s) for s in sentences(SOURCE)}


def test_near_miss_places_ask_where_only_when_the_passage_names_no_place():
    from groundtune.augment import near_miss_questions

    sent = sentences(SOURCE)[1]
    where = [q for q, a in near_miss_questions(sent, SOURCE, "No", places=True) if a == "No; it gives no place."]
    assert where == ["Where did Rutte welcome Germany's decision to provide Ukraine with two additional Patriot "
                     "missile systems?"]
    assert len(near_miss_questions(sent, SOURCE, "No")) == len(near_miss_questions(sent, SOURCE, "No", True)) - 1
    placed = SOURCE + " The talks took place in Brussels."
    assert not any(a.endswith("no place.") for _, a in near_miss_questions(sent, placed, "No", places=True))
