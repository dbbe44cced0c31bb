import re

from groundtune.augment import (abstention_pairs, answer_sentence, augment, cloze_questions, compound_pairs,
                                detail_pairs, evidence_pairs, grounded_answer, main_entities, passage_covers, passage_pairs, reword, sentences)
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


def test_evidence_abstains_only_where_the_asked_words_are_gone():
    # With every sentence's questions allowed, a question is abstained only when a word it asks about left the
    # prompt with its sentence: "China" is named in one sentence only, "Russia" also as "Russian" elsewhere
    abstained = {p.question for p in evidence_pairs(SOURCE, "x", "The source does not say.", removed=50, kept=0)}
    assert "What did Rutte say about China?" in abstained
    assert "What did Rutte say about Russia?" not in abstained and "What did Rutte say about Ukrainian?" not in abstained
    assert not any(re.search(r"about .*Rutte", q) for q in abstained)  # the whole passage is about its subject


def test_detail_removal_abstains_on_the_missing_detail_and_answers_the_rest():
    pairs = detail_pairs(SOURCE, "x", "The source does not say.", 10)
    contexts = list(dict.fromkeys(p.context for p in pairs))
    assert len(contexts) == 3  # Germany, "two", "400%": the details no other sentence repeats
    answerable = {p.question for p in passage_pairs(SOURCE, "x", factoids=True)}
    for context in contexts:
        rows = [p for p in pairs if p.context == context]
        assert len(rows) == 4 and context != SOURCE
        changed = [s for s in sentences(context) if s not in SOURCE]
        assert len(changed) == 1 and " and allies" not in changed[0]
        for p in rows:
            if p.kind == "abstain":
                assert p.question in answerable  # its twin with the whole passage is answered
                assert p.answer in ("The source does not say; it gives no number.",
                                    "The source does not say; it does not say which country.")
            else:
                assert p.answer in {answer_sentence(s) for s in sentences(context)}
    assert "Rutte welcomed the decision to provide Ukraine" in contexts[0]
    assert detail_pairs(SOURCE, "x", "The source does not say.", 0) == []


def test_partner_questions_ask_whom_the_subject_met():
    talks = next(answer_sentence(s) for s in sentences(SOURCE) if "in talks with" in s)
    asked = {p.question: p.answer for p in passage_pairs(SOURCE, "x", partners=True)}
    assert asked["Who did Rutte hold talks with?"] == talks and asked["With whom did Rutte hold talks?"] == talks
    assert "Who did Rutte hold talks with?" not in {p.question for p in passage_pairs(SOURCE, "x")}


def test_compound_questions_join_two_sentences_in_the_order_asked():
    passage = passage_pairs(SOURCE, "x", participles=True, keywords=4, factoids=True)
    answers = {p.question: p.answer for p in passage}
    pairs = compound_pairs(passage, 12, "y")
    assert len(pairs) == 12 and len({p.question for p in pairs}) == 12 and compound_pairs(passage, 0, "y") == []
    for p in pairs:
        first, second = p.question.split(", and ")
        first, second = first + "?", second[0].upper() + second[1:]
        assert p.answer == f"{answers[first]} {answers[second]}" and answers[first] != answers[second]
        assert " about " not in p.question
    assert len({p.answer for p in pairs}) > 6  # spread over sentence pairs, not one pair repeated


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


def test_abstention_reasons_off_leaves_every_abstention_bare_and_nothing_else_changed():
    cfg = AugmentConfig()
    out = augment(PAIRS, cfg, "The source does not say.")
    bare = augment(PAIRS, AugmentConfig(abstention_reasons=False), "The source does not say.")
    assert [(p.question, p.kind) for p in out] == [(p.question, p.kind) for p in bare]
    reasons = {p.answer for p in out if p.kind == "abstain"}
    assert len(reasons) > 3 and all(a.startswith("The source does not say;") for a in reasons)
    assert {p.answer for p in bare if p.kind == "abstain"} == {"The source does not say."}
    assert [p for p in out if p.kind != "abstain"] == [p for p in bare if p.kind != "abstain"]


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


def test_referent_questions_reword_passage_questions_with_other_names_and_the_same_answers():
    off = augment(PAIRS, AugmentConfig(), "The source does not say.")
    on = augment(PAIRS, AugmentConfig(referent_questions=True), "The source does not say.")
    new = [p for p in on if p.question not in {q.question for q in off}]
    assert new and {p.kind for p in new} <= {"passage", "abstain"}
    chief = [p for p in new if p.question == "What did NATO's chief advocate in air and missile defence?"]
    assert len(chief) == 1 and chief[0].answer == next(
        p.answer for p in off if p.question == "What did Rutte advocate in air and missile defense?")
    assert any("the alliance's leader" in p.question for p in new) and any("alliance members" in p.question for p in new)
    user = [(p.question, p.answer) for p in off if p.kind in ("user", "variant")]
    assert user == [(p.question, p.answer) for p in on if p.kind in ("user", "variant")], "the user's pairs unchanged"
    answers = {p.answer for p in new if p.kind == "passage"}
    assert answers <= {p.answer for p in off if p.kind == "passage"}, "no new answer: only questions change"


def test_synonym_variants_add_one_rewording_in_other_words_answered_like_the_others():
    off = augment(PAIRS, AugmentConfig(), "The source does not say.")
    on = augment(PAIRS, AugmentConfig(synonym_variants=True), "The source does not say.")
    new = [p for p in on if p.question not in {q.question for q in off}]
    assert {p.kind for p in new} == {"variant"} and len(new) == 8  # one per user question with words to swap
    assert len({p.line for p in new}) == 8, "one per pair"
    for p in new:
        framed = {q.answer for q in off if q.kind == "variant" and q.line == p.line}
        assert framed == {p.answer}, f"answered like the pair's other rewordings: {p.question}"
    assert "How is the alliance addressing the boost in threats from Russia?" in {p.question for p in new}
    assert [p for p in on if p.kind != "variant"] == [p for p in off if p.kind != "variant"]


def test_title_twins_contrast_the_passage_title_with_other_offices():
    from groundtune.augment import title_pairs
    pairs = title_pairs(SOURCE, 3, "x")
    qa = {p.question: p.answer for p in pairs}
    holder = "Mark Rutte is the NATO Secretary General."
    assert qa["Is Mark Rutte the Chancellor of Germany?"] == f"No. {holder}"
    assert qa["Is Rutte the NATO Secretary General?"] == f"Yes. {holder}"
    assert qa["Who leads NATO?"] == qa["Which organization does Rutte head?"] == holder
    falses = [q for q, a in qa.items() if a.startswith("No.")]
    assert len(falses) == 3 and not any("Secretary-General" in q for q in falses)  # the passage's own office is not "other"
    assert {p.kind for p in pairs} == {"passage"} and len(pairs) == 6
    assert title_pairs(SOURCE, 0, "x") == []
    first = title_pairs(OTHER, 3, "x")[0]  # "Mayor Ines Holt", no organisation: no "Who leads ...?"
    assert (first.question, first.answer) == ("Is Ines Holt the Chancellor of Germany?", "No. Ines Holt is the Mayor.")
    assert len(title_pairs(OTHER, 3, "x")) == 4


def test_mention_questions_answer_yes_with_the_sentence_naming_the_country():
    from groundtune.questions import mention_questions
    qa = dict(mention_questions([answer_sentence(s) for s in sentences(SOURCE)]))
    canada = next(a for q, a in qa.items() if q.endswith("Canada?"))
    assert canada.startswith("Yes. ") and "Canadian allies" in canada  # by its demonym
    assert any(q.endswith("the United States mentioned in the passage?") or q.endswith("the United States?") for q in qa)
    assert not any("U.S." in q for q in qa) and len(qa) == 7  # U.S. asked once, as "the United States"
    assert any("NATO" in q for q in qa) and mention_questions(["The tram opened."]) == []


def test_augment_adds_the_title_and_mention_questions_only_when_asked():
    base = augment(PAIRS, AugmentConfig(), "The source does not say.")
    more = augment(PAIRS, AugmentConfig(title_twins=3, mention_questions=True), "The source does not say.")
    added = [p for p in more if p.path.endswith(("#title", "#mention"))]
    assert not any(p.path.endswith(("#title", "#mention")) for p in base)
    assert len(added) == 13 and len(more) == len(base) + 13


def test_unstated_questions_ask_for_reactions_and_names_the_passage_does_not_give():
    from groundtune.augment import unstated_pairs
    pairs = unstated_pairs(SOURCE, "The source does not say.", "x")
    qa = {p.question: p.answer for p in pairs}
    assert all(p.kind == "abstain" for p in pairs)
    assert qa["Which Ukrainian officials does the source name?"] == (
        "The source does not say; it does not give the Ukrainian officials by name.")
    reactions = [q for q in qa if "react" in q or "response" in q]
    parties = [re.search(r"(?:did|How did) (.+?) (?:react|give)", q).group(1) for q in reactions]
    assert len(parties) == len(set(parties)) >= 4  # one party per sentence, none asked twice
    assert all(qa[q] == f"The source does not say; it does not say how {x} reacted." for q, x in zip(reactions, parties))
    assert not any("Rutte react" in q for q in qa)  # the subject is not asked about itself
    reported = SOURCE + " Moscow responded angrily."
    assert not any("react" in p.question for p in unstated_pairs(reported, "No.", "x"))  # a reaction is reported
    base = augment(PAIRS, AugmentConfig(), "The source does not say.")
    more = augment(PAIRS, AugmentConfig(unstated_questions=True), "The source does not say.")
    assert not any(p.path.endswith("#unstated") for p in base) and len(more) == len(base) + len(pairs)


def test_false_premises_are_answered_no_and_their_true_twins_yes():
    spending = next(answer_sentence(s) for s in sentences(SOURCE) if "ramp up" in s)
    asked = {p.question: p.answer for p in passage_pairs(SOURCE, "x", false_premises=3)}
    assert asked["Did Rutte underline the necessity for NATO countries to significantly cut defense spending?"] == f"No. {spending}"
    assert asked["Did Rutte advocate a 40% increase in air and missile defense?"] == f"No. {spending}"
    says = [q for q in asked if q.startswith("Does the passage say that")]
    assert says and all(asked[q].startswith(("Yes. ", "No. ")) for q in says)
    default = {p.question for p in passage_pairs(SOURCE, "x")}
    assert not any(q.startswith("Does the passage say that") for q in default)
    new = [q for q in asked if q not in default]
    assert abs(sum(asked[q].startswith("No.") for q in new) - sum(asked[q].startswith("Yes.") for q in new)) <= 3
