import pytest

import re

from groundtune.questions import (base_form, claims, clause_questions, parse_clause, paraphrase, premise_questions,
                                  reversed_detail, wrong_number)

NUMBER = re.compile(r"\b(?:\d[\d,.]*%?|two|three)\b")


@pytest.mark.parametrize("past, stem", [("welcomed", "welcome"), ("noted", "note"), ("emphasized", "emphasize"),
                                        ("underlined", "underline"), ("called", "call"), ("advocated", "advocate"),
                                        ("urged", "urge"), ("planned", "plan"), ("warned", "warn"), ("carried", "carry"),
                                        ("agreed", "agree"), ("endorsed", "endorse"), ("said", "said")])
def test_base_form(past, stem):
    assert base_form(past) == stem


def test_parse_clause_skips_an_inserted_phrase():
    c = parse_clause("Rutte, in talks with Ukrainian officials, emphasized the importance of acquiring U.S. weapons.")
    assert (c.subject, c.aux, c.verb) == ("Rutte", None, "emphasized")
    c = parse_clause("Rutte has consistently called for unity among NATO members.")
    assert (c.aux, c.adverbs, c.verb, c.rest) == ("has", "consistently", "called", "for unity among NATO members")
    assert parse_clause("In 2024 the council met.") is None


def test_clause_questions_forms():
    qs = dict(clause_questions("Rutte welcomed Germany's decision to provide Ukraine with two additional Patriot "
                               "missile systems, stating that this move will bolster Ukraine's air defense."))
    assert qs["What did Rutte welcome?"] == "answer"
    assert qs["Did Rutte criticise Germany's decision to provide Ukraine with two additional Patriot missile systems?"] == "false"
    assert "How did Rutte react to Germany's decision to provide Ukraine with two additional Patriot missile systems?" in qs
    assert "Why did Rutte welcome Germany's decision to provide Ukraine with two additional Patriot missile systems?" in qs
    qs = dict(clause_questions("Rutte has consistently called for unity among NATO members in support of Ukraine."))
    assert "What has Rutte consistently called for?" in qs
    assert "Has Rutte consistently called for unity among NATO members in support of Ukraine?" in qs


def test_paraphrase_uses_generic_synonyms_and_metonyms():
    assert paraphrase("Did Germany's decision provide U.S. weapons?") == "Did Berlin's move supply American arms?"
    assert paraphrase("Who?") is None


def test_when_question_keeps_the_clause():
    from groundtune.questions import when_question

    assert when_question("Rutte welcomed Germany's decision to provide two systems.") == (
        "When did Rutte welcome Germany's decision to provide two systems?")
    assert when_question("Rutte spoke.") is None  # no object to ask about


def test_title_questions_ask_who_holds_a_title():
    from groundtune.questions import title_questions

    qa = dict(title_questions("NATO Secretary General Mark Rutte has been at the forefront of the talks."))
    assert qa["Who is the Secretary General of NATO?"] == "Mark Rutte is the NATO Secretary General."
    assert qa["What is Mark Rutte's title?"] == "Mark Rutte is the NATO Secretary General."
    assert dict(title_questions("German Chancellor Friedrich Merz spoke."))["Who is the Chancellor of Germany?"] == (
        "Friedrich Merz is the German Chancellor.")
    assert title_questions("Rutte welcomed Germany's decision.") == []
    assert dict(title_questions("It met on Tuesday. Mayor Ines Holt spoke."))["Who is the Mayor?"] == (
        "Ines Holt is the Mayor.")  # "Tuesday." ends a sentence: no organisation


def test_participle_questions_reach_the_clauses_after_the_main_verb():
    from groundtune.questions import participle_questions
    qs = participle_questions("Rutte underlined the necessity for NATO countries to significantly ramp up defense "
                              "spending, advocating a 400% increase in air and missile defense to counter threats.")
    assert qs == ["What did Rutte advocate?", "What did Rutte advocate in air and missile defense?",
                  "Why did Rutte advocate a 400% increase in air and missile defense?"]
    qs = participle_questions("Rutte has called for unity, advocating for concerted efforts and endorsing sustained "
                              "support from European allies.")
    assert "What did Rutte endorse?" in qs and "What did Rutte advocate?" in qs
    assert participle_questions("Rutte welcomed the decision.") == []


def test_keyword_questions_use_phrases_of_one_sentence_only():
    import re

    from groundtune.questions import keyword_questions
    sents = ["Rutte urged higher defense spending to counter threats.", "Rutte welcomed the defense decision.",
             "Rutte has consistently called for unity among NATO members."]
    qs = keyword_questions(sents, 3)
    assert [len(q) for q in qs] == [3, 2, 2] and keyword_questions(sents, 0) == [[], [], []]
    assert qs[0][0] == "What does the source say about higher defense?"  # two-word phrases first
    assert "What does the passage mention about defense spending?" in qs[0]
    for i, asked in enumerate(qs):
        for q in asked:
            phrase = re.search(r"about (.+?)[?.]$", q).group(1)
            assert [phrase in s for s in sents].count(True) == 1 and phrase in sents[i]  # only its own sentence
            assert not re.search(r"\b\w+(ed|ly)\b|about defense\?", q)  # no -ed verbs, adverbs or shared words


def test_factoid_questions_ask_for_the_country_or_number_the_sentence_gives():
    from groundtune.augment import NUMBER
    from groundtune.questions import factoid_questions
    qs = factoid_questions("Rutte welcomed France's decision to send Poland three more tanks, stating that it helps", NUMBER)
    assert qs == ["Which country decided to send Poland three more tanks?", "Which country's decision does the source mention?",
                  "How many more tanks does the source mention?"]  # a bare country ("Poland") is not asked about
    qs = factoid_questions("Officials urged a 40% increase in air and missile defense to counter U.S. sanctions and "
                           "Chinese exports.", NUMBER)
    assert qs == ["Which country's sanctions does the source mention?", "Which country's exports are mentioned in the text?",
                  "What percentage increase in air and missile defense does the source mention?"]
    assert factoid_questions("Nothing here names a country or a number.", NUMBER) == []


def test_factoid_questions_are_answered_by_their_sentence_when_switched_on():
    from groundtune.augment import passage_pairs
    source = "Rutte welcomed Germany's decision to provide Ukraine with two additional Patriot missile systems."
    plain = passage_pairs(source, "seed.txt")
    with_factoids = passage_pairs(source, "seed.txt", factoids=True)
    added = {p.question for p in with_factoids} - {p.question for p in plain}
    assert "Which country decided to provide Ukraine with two additional Patriot missile systems?" in added
    assert "How many additional Patriot missile systems does the source mention?" in added
    assert all(p.answer == source for p in with_factoids if p.question in added)


def test_swap_country_replaces_the_first_mention_with_the_same_form():
    from groundtune.questions import country_forms, swap_country
    present = country_forms("Germany sends U.S. weapons to Ukrainian troops")
    assert present == {"Germany", "U.S.", "Ukraine"}
    assert swap_country("What did Rutte say about Germany?", present, "Japan") == "What did Rutte say about Japan?"
    assert swap_country("Did Berlin's move help Kyiv?", present, "France") == "Did Paris's move help Kyiv?"  # capital
    assert swap_country("Why buy American arms for Ukraine?", present, "Italy") == "Why buy Italian arms for Ukraine?"
    assert swap_country("What about U.S. weapons?", present, "Poland") == "What about Polish weapons?"  # a modifier
    assert swap_country("What did Rutte say?", present, "Japan") is None
    assert country_forms("a U.S.-made system; Russians, Chinatown") == {"U.S."}  # whole words only


@pytest.mark.parametrize("question, absent, twin", [
    ("What did the United States decide?", "Poland", "What did Poland decide?"),          # no "the Poland"
    ("The United States decided what?", "Japan", "Japan decided what?"),
    ("What did the United States decide?", "Netherlands", "What did the Netherlands decide?"),  # it keeps "the"
    ("What did the U.S. decide?", "Poland", None),  # "the U.S. <word>": modifier or noun? no twin, not a wrong one
])
def test_swap_country_keeps_the_article_only_for_names_that_take_it(question, absent, twin):
    from groundtune.questions import country_forms, swap_country
    assert swap_country(question, country_forms("the U.S. and the United States"), absent) == twin


def test_swap_person_replaces_the_name_with_its_title_or_the_surname_alone():
    from groundtune.questions import swap_person
    assert swap_person("What did Rutte say about China?", "Rutte", "Emmanuel Macron") == "What did Macron say about China?"
    assert swap_person("Did Rutte welcome it?", "Rutte", "Emmanuel Macron") == "Did Macron welcome it?"
    assert (swap_person("What does the source say about NATO Secretary General Mark Rutte?", "Rutte", "Olaf Scholz")
            == "What does the source say about Olaf Scholz?")
    assert swap_person("Who is the NATO Secretary General?", "Rutte", "Olaf Scholz") is None


def test_referents_name_a_titled_person_the_ways_news_questions_do():
    from groundtune.questions import referents

    forms = referents("NATO Secretary General Mark Rutte met officials. Rutte spoke.")["Rutte"]
    assert {"NATO's chief", "the alliance's leader", "the NATO Secretary General", "NATO's secretary general",
            "Mark Rutte"} <= set(forms)
    assert referents("Mayor Ines Holt said the line will cost more.") == {"Holt": ["the Mayor", "Ines Holt"]}
    assert referents("German Chancellor Olaf Scholz spoke.")["Scholz"][:2] == ["Germany's chief", "the German Chancellor"]
    assert referents("Rutte welcomed Germany's decision.") == {}  # no title: nothing to refer by


def test_refer_swaps_the_bare_surname_and_an_organisation_used_as_a_modifier():
    from groundtune.questions import refer

    assert refer("What did Rutte welcome?", "Rutte", "NATO's chief") == "What did NATO's chief welcome?"
    assert refer("Has Rutte called for unity among NATO members?", "Rutte", "the alliance's leader") == (
        "Has the alliance's leader called for unity among alliance members?")
    assert refer("Rutte urged a path to NATO, advocating what?", "Rutte", "the NATO Secretary General") == (
        "The NATO Secretary General urged a path to the alliance, advocating what?")
    assert refer("What did Mark Rutte say?", "Rutte", "NATO's chief") is None  # a full name is left alone
    assert refer("What is Rutte's job?", "Rutte", "NATO's chief") is None  # so is a possessive
    assert refer("What did Guterres say?", "Rutte", "NATO's chief") is None  # nothing to swap
    # an organisation that is not a modifier becomes "the <noun>"; a referent's own organisation stays
    assert refer("Did NATO respond, and what did NATO's chief say?", "", "") == (
        "Did the alliance respond, and what did the alliance's chief say?")
    assert refer("How does Rutte see NATO's role?", "Rutte", "NATO's chief") == "How does NATO's chief see the alliance's role?"


@pytest.mark.parametrize("number, wrong", [("two", "three"), ("Two", "Three"), ("400%", "40%"), ("18", "180"),
                                           ("2,000", "200"), ("dozen", "hundred"), ("many", None)])
def test_wrong_number_keeps_the_form(number, wrong):
    assert wrong_number(number) == wrong


def test_reversed_detail_turns_the_first_direction_word():
    assert reversed_detail("countries to ramp up defense spending, a 400% increase") == "countries to cut defense spending, a 400% increase"
    assert reversed_detail("if Russia fails to negotiate peace") == "if Russia agrees to negotiate peace"
    assert reversed_detail("Rutte welcomed the decision") is None


def test_claims_cover_the_main_and_the_participle_clauses():
    found = claims("Rutte underlined the necessity for NATO countries to significantly ramp up defense spending, "
                   "advocating a 400% increase in air and missile defense to counter threats.")
    assert found == [("Did Rutte underline the necessity for NATO countries to significantly ramp up defense spending?",
                      "Rutte underlined the necessity for NATO countries to significantly ramp up defense spending"),
                     ("Did Rutte advocate a 400% increase in air and missile defense?",
                      "Rutte advocated a 400% increase in air and missile defense")]
    assert claims("In 2024 the council met.") == []


def test_premise_questions_pair_each_wrong_detail_with_a_true_question():
    sentence = ("Rutte underlined the necessity for NATO countries to significantly ramp up defense spending, "
                "advocating a 400% increase in air and missile defense to counter threats.")
    asked = premise_questions(sentence, {"Germany", "Ukraine"}, NUMBER, 3)
    wrong = [q for q, true in asked if not true]
    assert "Did Rutte underline the necessity for NATO countries to significantly cut defense spending?" in wrong
    assert "Did Rutte advocate a 40% increase in air and missile defense?" in wrong
    assert any("400% cut" in q for q in wrong)
    assert len(wrong) == 3 and sum(true for _, true in asked) >= 2  # a true one beside each wrong one, but for repeats
    for q, true in asked:  # a true question keeps every detail of the sentence, a wrong one changes one
        assert true == ("400% increase" in q if "advocate" in q else "ramp up" in q)
    assert any(q.startswith("Does the passage say that") for q, _ in asked)  # both forms, so the form tells nothing
    assert premise_questions(sentence, set(), NUMBER, 0) == []


def test_premise_questions_swap_a_country_in_the_same_form():
    asked = dict(premise_questions("Rutte emphasized the importance of acquiring U.S. weapons.", {"U.S.", "China"},
                                   NUMBER, 2))
    assert asked == {"Did Rutte emphasize the importance of acquiring Chinese weapons?": False,
                     "Does the passage say that Rutte emphasized the importance of acquiring U.S. weapons?": True}


def test_premise_questions_change_only_the_details_asked_for():
    sentence = ("Rutte underlined the necessity for NATO countries to significantly ramp up defense spending, "
                "advocating a 400% increase in air and missile defense to counter threats.")
    directions = [q for q, true in premise_questions(sentence, set(), NUMBER, 3, ["direction"]) if not true]
    assert directions and all("cut" in q for q in directions) and not any("40%" in q for q in directions)
    numbers = [q for q, true in premise_questions(sentence, set(), NUMBER, 3, ["number"]) if not true]
    assert numbers == ["Did Rutte advocate a 40% increase in air and missile defense?"]
