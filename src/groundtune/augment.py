"""Passage-grounded augmentation: deterministic, offline, nothing invented.

Nine pairs are too few to teach a model to answer reworded questions or to refuse questions its
source cannot answer. This stage adds, from the user's pairs and the passage alone:

* `variant`: the user's questions reworded, so a rephrasing finds the same answer. The answer is the
  user's (`variant_answers: user`) or, with `grounded`, the passage sentence that best supports it
  (so rewordings do not spread claims the passage does not make); a question no passage sentence
  covers (`passage_covers`) keeps the user's answer, the only evidence there is;
* `passage`: questions answered by one passage sentence, with that sentence as the answer: "What does
  the source say about X?" for names that only that sentence mentions, and the sentence turned into a
  question by replacing a number, a subject or a possessor with a question word;
* `abstain`: questions the passage cannot answer (topics it never mentions, and details it lacks:
  dates, sums of money, named officials, ...), answered with `abstain_answer` plus what is missing;
* evidence removal (RAFT-style): passage questions asked with their sentence taken out of the prompt,
  answered with `abstain_answer`, next to questions whose evidence is still there, still answered; and the
  same for one country or number taken out of a sentence (`detail_pairs`).

Passage questions also ask about participle clauses, about phrases only one sentence has, and short
questions whose answer is a country or a number ("Which country decided to ...?"), the answerable twins
of the abstention questions (`participle_questions`, `keyword_questions`, `factoid_questions`: on in the
default recipe). Opt-in, measured and not kept
(README, "The recipe" and "Seeds"): the passage shown in several sentence orders (`passage_orders`); the
reworded copies of passage questions naming the titled person and organisations another way ("What did
NATO's chief welcome?", `referent_questions`); one more rewording of each user question in other words
(`synonym_variants`); evidence and detail removal (`missing_evidence`, `missing_details`); two-part questions
answered with two sentences (`compound_questions`).

Every added answer is a user answer, a passage sentence, or an abstention, so augmentation cannot
teach a claim that neither the user nor the passage makes.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import random
import re
from collections import Counter
from typing import Sequence

from groundtune.config import AugmentConfig
from groundtune.evaluation.text import content_stems
from groundtune.questions import (ARTICLE_NAMES, COUNTRIES, PEOPLE, PREMISE_DETAILS, about_questions, clause_questions, country_forms, factoid_details,
                                  factoid_questions, keyword_questions, mention_questions, paraphrase,
                                  participle_questions, partner_questions, premise_questions, refer, referents, swap_country, swap_person,
                                  title_questions, title_twins, unstated_questions, when_question, without_detail)
from groundtune.readers import Pair, normalize_question

# Rewordings that keep a question's meaning: (frame, lower-case the question's first letter).
QUESTION_FRAMES = [
    ("According to the source, {q}", True),
    ("Based on the passage, {q}", True),
    ("Briefly, {q}", True),
    ("{q} Answer from the text.", False),
    ("Can you tell me: {q}", False),
    ("What does the article say: {q}", False),
]

# Subjects a short news passage rarely covers; any the passage mentions are skipped.
OFF_TOPICS = [
    "the price of oil", "Japan's economy", "the Olympic Games", "climate change", "interest rates",
    "the Paris Agreement", "artificial intelligence", "a football match", "the World Cup", "a vaccine",
    "the stock market", "space exploration", "housing prices", "Antarctica", "the European Central Bank",
    "a hurricane", "the United Nations budget", "electric cars", "a music festival", "smartphone sales",
]
OFF_TOPIC_FRAMES = [
    "What does the source say about {t}?",
    "What did the passage report about {t}?",
    "How is {t} described in the text?",
    "What did {s} say about {t}?",
]
# General-knowledge questions about a country the passage names: (question, what is missing, pattern
# that means the passage HAS it). The model must not answer them from what it knew before training.
KNOWLEDGE_QUESTIONS = [
    ("What is the capital of {c}?", "capital of {c}", r"\bcapital\b"),
    ("What is the population of {c}?", "population of {c}", r"\b(population|inhabitants|citizens)\b"),
    ("What currency does {c} use?", "currency of {c}", r"\b(currency|euros?|dollars?|roubles?|rubles?|yuan|hryvnias?)\b"),
    ("Who is the head of government of {c}?", "head of government of {c}", r"\b(prime minister|chancellor|premier)\b"),
]
# Details a passage may lack: (question, what the answer says is missing, pattern that means the passage HAS it).
MISSING_DETAILS = [
    ("On what date did this happen?", "date",
     r"\b(1[89]|20)\d\d\b|\b(January|February|March|April|May|June|July|August|September|October|November|December|Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday|yesterday|today|tomorrow)\b"),
    ("How much money is involved, in dollars or euros?", "amount of money",
     r"[$€£]|\b(dollars?|euros?|pounds?|billion|million|trillion)\b"),
    ("Who wrote this article?", "author", r"\b(reporter|correspondent|written by|author)\b"),
    ("What is the name of {e}'s finance minister?", "name of a finance minister", r"\bminister\b"),
    ("How many soldiers or troops are mentioned?", "number of soldiers", r"\b(troops|soldiers|personnel)\b"),
    ("In which city did the talks take place?", "location for the talks", r"\b(held in|took place in|city of|capital)\b"),
    ("How much will the plans described in the source cost?", "cost", r"[$€£]|\b(cost|price|dollars?|euros?)\b"),
    ("How many months will this take?", "duration", r"\b(months?|weeks?|years?|days?)\b"),
]

ENTITY = re.compile(r"\b[A-Z][\w'’.-]*(?:\s+(?:of|the|and)?\s*[A-Z][\w'’.-]*)*")
NUMBER_WORDS = r"one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|dozen|hundred|thousand"
NUMBER = re.compile(rf"\b(?:\d[\d,.]*(?:\s?(?:%|percent\b|per cent\b))?|(?:{NUMBER_WORDS})\b)", re.IGNORECASE)
DISCOURSE = re.compile(r"^(?:(?:In recent developments|Furthermore|Additionally|Moreover|However|Meanwhile|Amid these "
                       r"discussions|In addition|Also|Separately|Finally|Earlier|Later),\s*)", re.IGNORECASE)
WH = re.compile(r"^(?:What|Who|Whom|Whose|Which|Why|How|When|Where)\b")  # a question, not a cloze or yes/no one
YES_NO = re.compile(r"^(Did|Does|Do|Has|Have|Had|Is|Are|Was|Were|Will|Would|Can|Could)\b")
_COMMON_STARTS = {"in", "the", "a", "an", "furthermore", "additionally", "amid", "moreover", "however", "also",
                  "meanwhile", "this", "these", "it", "he", "she", "they", "on", "at", "for", "finally", "earlier"}


def sentences(text: str) -> list[str]:
    """Split a passage into sentences with pysbd (which handles 'U.S.' and similar abbreviations)."""
    import pysbd

    return [s.strip() for s in pysbd.Segmenter(language="en", clean=False).segment(text) if s.strip()]


def answer_sentence(sentence: str) -> str:
    """A passage sentence as an answer: without a leading discourse marker ('Furthermore, ...')."""
    s = DISCOURSE.sub("", sentence.strip())
    return s[0].upper() + s[1:] if s else s


def reword(question: str, k: int, offset: int) -> list[str]:
    """Up to `k` rewordings of `question`, picked round-robin from QUESTION_FRAMES starting at `offset`."""
    out = []
    for i in range(min(k, len(QUESTION_FRAMES))):
        frame, lower = QUESTION_FRAMES[(offset + i) % len(QUESTION_FRAMES)]
        q = question[0].lower() + question[1:] if lower and not question[:2].isupper() else question
        out.append(frame.format(q=q))
    return out


def entities(sentence: str) -> list[str]:
    """Capitalised spans, minus a sentence-initial word that is not a name; possessive 's removed."""
    found = []
    for m in ENTITY.finditer(sentence):
        span = m.group(0).strip().rstrip(".")
        if m.start() == 0 and " " not in span and span.lower() in _COMMON_STARTS:
            continue
        found.append(re.sub(r"['’]s$", "", span))
    return found


def clause_with(sentence: str, start: int, end: int, min_words: int = 8) -> str:
    """The sentence up to the end of the comma-separated clause holding [start, end): the subject and
    the fact, without trailing clauses ('..., stating that ...'); at least `min_words` words, so an
    inserted phrase ('Rutte, in talks with officials, said ...') does not end it early."""
    cut = sentence.find(", ", end)
    while cut != -1 and len(sentence[:cut].split()) < min_words:
        cut = sentence.find(", ", cut + 2)
    return sentence[:cut] if cut != -1 else sentence


def cloze_questions(sentence: str) -> list[str]:
    """The sentence turned into questions by replacing one span with a question word: a number ->
    'how many' / 'what percentage' / 'which year', the opening subject -> 'who', a possessor ->
    'whose'. Each keeps only the clause that holds the fact. Deterministic; grammatical enough."""
    s = answer_sentence(sentence).rstrip(".")
    out = []
    m = NUMBER.search(s)
    if m:
        word = m.group(0)
        wh = ("what percentage" if re.search(r"%|percent|per cent", word) else
              "which year" if re.fullmatch(r"(1[89]|20)\d\d", word) else "how many")
        clause = clause_with(s, m.start(), m.end())
        out.append(f"{clause[:m.start()]}{wh}{clause[m.end():]}?")
    first = ENTITY.match(s)
    if first and first.group(0).split()[0].lower() not in _COMMON_STARTS:
        rest = s[first.end():].lstrip()
        if rest and rest[0].islower():
            out.append(f"Who {clause_with(rest, 0, min(len(rest), 40))}?")
    possessive = re.search(r"\b[A-Z][\w.-]+['’]s\b", s[1:])
    if possessive:
        a, b = possessive.start() + 1, possessive.end() + 1
        clause = clause_with(s, a, b)
        out.append(f"{clause[:a]}whose{clause[b:]}?")
    return out


def near_miss_questions(sentence: str, source: str, stem: str) -> list[tuple[str, str]]:
    """Questions about the sentence's event that ask for a detail the whole passage lacks (a date, a
    sum of money), answered with an abstention naming the missing detail."""
    s = answer_sentence(sentence).rstrip(".")
    clause = clause_with(s, 0, min(len(s), 30))
    out = []
    if not re.search(MISSING_DETAILS[0][2], source, flags=re.IGNORECASE):
        asked = when_question(s) or f"{clause}. On what date did this happen?"
        out.append((asked, f"{stem}; it gives no date."))
    if not re.search(MISSING_DETAILS[1][2], source, flags=re.IGNORECASE):
        out.append((f"{clause}. How much money was involved?", f"{stem}; it gives no amount of money."))
    return out


def rewording(source: str, referring: bool, organisations: bool = False):
    """question -> its reworded copy or None: generic synonyms and metonyms (`questions.paraphrase`) and, with
    `referring`, the passage's titled person named another way, in turns over the questions that name
    him or her (`questions.referents`), with organisations by their noun (`questions.refer`; also in
    questions that name no one, with `organisations`)."""
    names = list(referents(source).items()) if referring else []
    turn = itertools.count()

    def reworded(q: str) -> str | None:
        p = paraphrase(q)
        for surname, forms in names:
            r = refer(p or q, surname, forms[next(turn) % len(forms)]) if re.search(rf"\b{re.escape(surname)}\b", p or q) else None
            if r:
                return r
        return (refer(p or q, "", "") or p) if organisations else p
    return reworded


def sentence_questions(source: str, abstain_answer: str, participles: bool = False, keywords: int = 0,
                       factoids: bool = False, referring: bool = False,
                       partners: bool = False, false_premises: int = 0,
                       premise_details: Sequence[str] = PREMISE_DETAILS) -> list[list[tuple[str, str, str]]]:
    """Per passage sentence: (question, answer, kind) triples. Answered by the sentence (topic, cloze,
    what/why/how and yes/no questions, plus a reworded copy of each) or, for details the whole passage
    lacks, by an abstention. A yes/no question with a false premise is answered 'No.' + the sentence.
    With `referring`, the reworded copy also names the passage's titled person another way ("NATO's chief",
    "the alliance's leader", in turns) and an organisation by its noun ("alliance members"). With
    `false_premises`, up to that many yes/no questions per sentence with a wrong detail, each beside a true one
    (`questions.premise_questions`), answered 'No.' / 'Yes.' + the sentence."""
    sents = sentences(source)
    reworded = rewording(source, referring)
    counts = Counter(e for s in sents for e in set(entities(s)))
    subject = main_entities(source)[0]
    stem = abstain_answer.rstrip(".")
    answers = [answer_sentence(s) for s in sents]
    present = country_forms(source)
    out = []
    for sent, answer, topical in zip(sents, answers, keyword_questions(answers, keywords)):
        own = [e for e in dict.fromkeys(entities(sent)) if counts[e] == 1][:2]
        asked = [f"What does the source say about {topic}?" for topic in own]
        asked += about_questions(sent, own, subject)
        asked += cloze_questions(sent)
        asked += participle_questions(answer) if participles else []
        asked += partner_questions(answer) if partners else []
        asked += topical
        items = []
        for q, kind in [(q, "answer") for q in asked] + clause_questions(answer):
            reply = f"No. {answer}" if kind == "false" else f"Yes. {answer}" if YES_NO.match(q) else answer
            items += [(x, reply, "passage") for x in (q, reworded(q)) if x]
        items += [(q, a, "passage") for q, a in title_questions(answer)]
        items += [(q, answer, "passage") for q in factoid_questions(answer, NUMBER)] if factoids else []
        items += [(q, f"{'Yes' if true else 'No'}. {answer}", "passage")
                  for q, true in premise_questions(answer, present, NUMBER, false_premises, premise_details)]
        items += [(q, a, "abstain") for q, a in near_miss_questions(sent, source, stem)]
        out.append(items)
    return out


def passage_pairs(source: str, path: str, abstain_answer: str = "The source does not say.", participles: bool = False,
                  keywords: int = 0, factoids: bool = False, referring: bool = False, partners: bool = False,
                  false_premises: int = 0, premise_details: Sequence[str] = PREMISE_DETAILS) -> list[Pair]:
    """Every sentence question, asked with the whole passage in the prompt."""
    items = sentence_questions(source, abstain_answer, participles, keywords, factoids, referring, partners,
                               false_premises, premise_details)
    return [Pair(q, a, source, path, i + 1, kind=kind) for i, qs in enumerate(items) for q, a, kind in qs]


QUESTION_FRAME = frozenset(content_stems("source passage text article say said mention tell"))
"""Content words of the question frames themselves ("What does the source say about ...?"), never evidence."""


def context_lacks(question: str, context: str, subject: set[str]) -> bool:
    """Whether `context` lacks a content word of `question`, other than the passage's main subject and the
    question frame. Words match on their first five letters, so "Russia" is present where the context says
    "Russian" and "Ukrainian" where it says "Ukraine": a question is only taken to lose its evidence when a
    word it asks about is gone from the prompt altogether."""
    shown = {w[:5] for w in content_stems(context)}
    return any(w[:5] not in shown for w in content_stems(question) - subject - QUESTION_FRAME)


def passage_without(sents: list[str], i: int, instead: str | None = None) -> str:
    """The passage with sentence `i` taken out, or replaced by `instead`."""
    return " ".join(sents[:i] + ([instead] if instead else []) + sents[i + 1:])


def answered_questions(source: str, abstain_answer: str) -> list[list[tuple[str, str]]]:
    """Per passage sentence, its passage questions with their answers, without the false-premise ones ('No. ...'):
    the questions whose evidence is that sentence."""
    return [[(q, a) for q, a, kind in items if kind == "passage" and not a.startswith("No.")]
            for items in sentence_questions(source, abstain_answer)]


def evidence_pairs(source: str, path: str, abstain_answer: str, removed: int, kept: int) -> list[Pair]:
    """RAFT-style contrast: the passage with one sentence taken out of the prompt. Up to `removed`
    questions about that sentence whose asked-about words the rest of the passage lacks (`context_lacks`)
    are then answered with `abstain_answer` (their evidence is gone), and `kept` questions about other
    sentences are still answered. The model learns to answer when the prompt supports the answer, not
    when the question merely looks familiar. Questions are spread over the sentence's question kinds; none
    asks what the source says about its main subject, which every sentence is about."""
    sents, main = sentences(source), main_entities(source)
    name, subject = main[0], content_stems(" ".join(main))
    per_sentence = answered_questions(source, abstain_answer)
    pairs = []
    for i in range(len(sents)):
        context = passage_without(sents, i)
        gone = [q for q, _ in per_sentence[i] if context_lacks(q, context, subject)
                and not re.search(rf"\babout\b.*\b{re.escape(name)}\b", q)]  # every sentence is about the subject
        for q in gone[::max(1, len(gone) // removed)][:removed] if removed else []:
            pairs.append(Pair(q, abstain_answer, source, path, i + 1, kind="abstain", context=context))
        others = [qa for j, items in enumerate(per_sentence) if j != i for qa in items[i % max(len(items), 1):][:1]]
        for q, a in others[:kept]:
            pairs.append(Pair(q, a, source, path, i + 1, kind="passage", context=context))
    return pairs


DETAIL_GONE = {"country": "it does not say which country", "number": "it gives no number"}


def detail_pairs(source: str, path: str, abstain_answer: str, n: int) -> list[Pair]:
    """Evidence removal at the level of one detail: up to `n` prompts, each the passage with one country or
    number taken out of one sentence (`questions.without_detail`: "Germany's decision" -> "the decision",
    "two additional" -> "additional"). In each, the short questions that asked for it ("Which country decided
    to ...?", "How many additional Patriot missile systems ...?") are answered "<abstain_answer>; it gives no
    number.", another question about the same sentence is answered with the shortened sentence and questions
    about other sentences as usual, four examples per prompt (one batch). The answerable twins (the same
    questions with the whole passage) are among the passage questions. Only details no other sentence
    repeats are taken out (with "U.S." in two sentences, "Which country's weapons ...?" would still find
    one), round-robin over the sentences."""
    if not n:
        return []
    stem, sents = abstain_answer.rstrip("."), sentences(source)
    per_sentence = [[q for q, _ in qas if WH.match(q)] for qas in answered_questions(source, abstain_answer)]
    details = []
    for i, sent in enumerate(sents):
        rest = passage_without(sents, i)
        rest_countries, rest_lower = country_forms(rest), rest.lower()
        spans: dict[tuple[int, int, str], list[str]] = {}
        for q, start, end, kind in factoid_details(sent, NUMBER):
            text = sent[start:end]
            repeated = country_forms(text) & rest_countries if kind == "country" else text.lower() in rest_lower
            coordinated = re.search(r"\b(?:and|or) $", sent[:start])  # "European and Canadian allies"
            if not repeated and not coordinated:
                spans.setdefault((start, end, kind), []).append(q)
        details.append(list(spans.items()))
    order = [(i, ds[r]) for r in range(max(map(len, details), default=0)) for i, ds in enumerate(details) if r < len(ds)]
    pairs = []
    for k, (i, ((start, end, kind), asked)) in enumerate(order[:n]):
        shortened = without_detail(sents[i], start, end, kind)
        context = passage_without(sents, i, instead=shortened)
        asked = asked[:2]
        pairs += [Pair(q, f"{stem}; {DETAIL_GONE[kind]}.", source, path, i + 1, kind="abstain", context=context)
                  for q in asked]
        detail = sents[i][start:end].removesuffix("'s").removesuffix("’s")
        same = [q for q in per_sentence[i] if detail not in q and q not in asked][k:k + 1]
        pairs += [Pair(q, answer_sentence(shortened), source, path, i + 1, kind="passage", context=context) for q in same]
        others = [(j, qs[k % len(qs)]) for j, qs in enumerate(per_sentence) if j != i and qs]
        for j, q in (others[k % len(others):] + others)[:4 - len(asked) - len(same)] if others else []:
            pairs.append(Pair(q, answer_sentence(sents[j]), source, path, j + 1, kind="passage", context=context))
    return pairs


def main_entities(source: str) -> tuple[str, str]:
    """(subject, topic): the name that opens most sentences, and the name mentioned most."""
    found = [entities(answer_sentence(s)) for s in sentences(source)]
    openers = Counter(e[0] for e in found if e)
    counts = Counter(x for e in found for x in e)
    if not counts:
        return "the author", "the subject"
    return openers.most_common(1)[0][0], counts.most_common(1)[0][0]


def abstention_pairs(source: str, n: int, answer: str, path: str) -> list[Pair]:
    """Up to `n` questions the passage cannot answer, alternating missing details and absent topics."""
    subject, topic = main_entities(source)
    stem = answer.rstrip(".")
    details = [(q.format(e=topic), f"{stem}; it gives no {what}.") for q, what, has in MISSING_DETAILS
               if not re.search(has, source, flags=re.IGNORECASE)]
    lowered = source.lower()
    topics = [t for t in OFF_TOPICS if not any(w in lowered for w in re.findall(r"[a-z]{4,}", t.lower()))]
    off = [(OFF_TOPIC_FRAMES[i % len(OFF_TOPIC_FRAMES)].format(t=t, s=subject), f"{stem}; it does not mention {t}.")
           for i, t in enumerate(topics)]
    countries = [c for c in COUNTRIES if re.search(rf"(?<!\w){re.escape(c)}(?!\w)", source)]  # not \b: "U.S." ends in "."
    asks = [(q, what) for q, what, has in KNOWLEDGE_QUESTIONS if not re.search(has, source, flags=re.IGNORECASE)]
    known = [(q.format(c=c), f"{stem}; it does not give the {what.format(c=c)}.")  # each round: every question,
             for k in range(len(countries)) for j, (q, what) in enumerate(asks)  # each about another country
             for c in [countries[(j + k) % len(countries)]]]
    streams = [details, off, known]
    mixed = [s[i] for i in range(max(map(len, streams))) for s in streams if i < len(s)]
    return [Pair(q, a, source, path, i + 1, kind="abstain") for i, (q, a) in enumerate(mixed[:n])]



def swap_pairs(source: str, passage: list[Pair], known: str, n: int, answer: str, path: str) -> list[Pair]:
    """Up to `n` absent-entity twins of the passage questions (`passage`, from `passage_pairs`): the same
    question about a country or a person that neither the passage nor the user's pairs (`known`) mention,
    answered "<answer>; it does not mention <them>." ("What did Rutte say about China?" -> "What did Rutte
    say about Japan?" and "What did Macron say about China?"). The model learns to check that the passage
    names whom a question asks about, not only that the question looks like one it knows. Only
    wh-questions are twinned (no yes/no or cloze sentences, whose twins read like garbled passage
    sentences), taken round-robin over the passage's sentences."""
    if not n:
        return []
    stem = answer.rstrip(".")
    present = country_forms(source)
    named = {COUNTRIES[c][0] for c in country_forms(source + " " + known)}  # by capital: "U.S." is "United States"
    absent = list({COUNTRIES[c][0]: c for c in reversed(COUNTRIES) if COUNTRIES[c][0] not in named}.values())[::-1]
    people = [p for p in PEOPLE if not re.search(rf"\b{re.escape(p.split()[-1])}\b", source + " " + known)]
    surname = main_entities(source)[0].split()[-1]
    by_sentence: dict[int, list[str]] = {}  # passage_pairs numbers each pair by its sentence
    for p in passage:
        if p.kind == "passage" and WH.match(p.question):
            by_sentence.setdefault(p.line, []).append(p.question)
    per_sentence = list(by_sentence.values())
    out: list[tuple[str, str]] = []
    for r in range(max(map(len, per_sentence), default=0)):
        for question in [qs[r] for qs in per_sentence if r < len(qs)]:
            k = len(out)  # a country and a person in turns, each cycling through its list
            country = absent[k // 2 % len(absent)] if absent else None
            person = people[k // 2 % len(people)] if people else None
            twins = [(country and swap_country(question, present, country), country),
                     (person and swap_person(question, surname, person), person)]
            for twin, who in twins[::-1] if k % 2 else twins:
                if twin:
                    out.append((twin, f"{stem}; it does not mention {'the ' * (who in ARTICLE_NAMES)}{who}."))
                    break
    return [Pair(q, a, source, path, i + 1, kind="abstain") for i, (q, a) in enumerate(out[:n])]


def compound_pairs(passage: list[Pair], n: int, path: str, max_words: int = 12) -> list[Pair]:
    """`n` two-part questions, each joining short questions about two different passage sentences ("Which
    country decided to ...?" + "What did Rutte endorse?" -> "Which country decided to ..., and what did Rutte
    endorse?"; no "What does the source say about X?" topics), answered with both sentences in the order asked.
    Sentence pairs are taken nearest first, the questions of each sentence in turns, so every sentence is asked
    about; 0 = none."""
    asked = Counter(normalize_question(p.question) for p in passage)
    by_sentence: dict[int, list[Pair]] = {}
    for p in passage:
        if (p.kind == "passage" and WH.match(p.question) and len(p.question.split()) <= max_words
                and asked[normalize_question(p.question)] == 1  # "What did Rutte advocate?" fits two sentences
                and " about " not in p.question):  # "What does the source say about X?" is a topic, not a question
            by_sentence.setdefault(p.line, []).append(p)
    lines = sorted(by_sentence)
    pairs = [(a, b) for gap in range(1, len(lines)) for a, b in zip(lines, lines[gap:])]
    out, used = [], Counter()
    for a, b in itertools.islice(itertools.cycle(pairs), n if pairs else 0):
        first = by_sentence[a][used[a] % len(by_sentence[a])]
        second = by_sentence[b][used[b] % len(by_sentence[b])]
        used.update([a, b])
        question = f"{first.question.rstrip('?')}, and {second.question[0].lower()}{second.question[1:]}"
        out.append(Pair(question, f"{first.answer} {second.answer}", first.source, path, len(out) + 1, kind="passage"))
    return out


def title_pairs(source: str, n: int, path: str) -> list[Pair]:
    """The passage's titles set against `n` other offices (`questions.title_twins`; 0 = none), answered from
    the passage's own apposition."""
    return [Pair(q, a, source, path, i + 1, kind="passage") for i, (q, a) in enumerate(title_twins(source, n) if n else [])]


def mention_pairs(source: str, path: str) -> list[Pair]:
    """'Does the source mention Canada?' -> 'Yes. <the first sentence naming it>' for each country and
    organisation the passage names (`questions.mention_questions`)."""
    asked = mention_questions([answer_sentence(s) for s in sentences(source)])
    return [Pair(q, a, source, path, i + 1, kind="passage") for i, (q, a) in enumerate(asked)]


def unstated_pairs(source: str, answer: str, path: str) -> list[Pair]:
    """Per passage sentence, the details it names without giving (`questions.unstated_questions`: another
    party's reaction, unless the passage reports one, and the names of a group), answered "<answer>; it does
    not say how Russia reacted."."""
    stem, subject = answer.rstrip("."), main_entities(source)[0]
    out, asked = [], set()
    for i, sent in enumerate(sentences(source)):
        for q, missing in unstated_questions(answer_sentence(sent), subject, source, turn=i, asked=asked):
            verb = "say" if missing.startswith("how") else "give"
            out.append(Pair(q, f"{stem}; it does not {verb} {missing}.", source, path, i + 1, kind="abstain"))
    return out


COVERED = 0.5
"""A passage covers a question when one of its sentences has at least this share of the question's content
words (stems, leaving out the passage's main subject). Of the nine seed questions, the three the k-fold
found the passage silent on (peace-process role, China's military growth, White House meeting) score
0.29, 0.29 and 0.2; the other six 0.6 to 1.0."""


def passage_covers(question: str, source: str) -> bool:
    """Whether one passage sentence shares at least `COVERED` of the question's content words."""
    subject = content_stems(" ".join(main_entities(source)))
    asked = content_stems(question) - subject
    if not asked:
        return True
    return max(len(asked & content_stems(s)) for s in sentences(source)) >= COVERED * len(asked)


def grounded_answer(question: str, answer: str, source: str, k: int = 1) -> str:
    """The k passage sentences (default one) that best support a question's answer, in passage order.

    Overlap of content words with the question (counted twice) and the answer, each weighted by its
    rarity across the passage's sentences (a word in every sentence, such as the subject's name, tells
    nothing about which sentence is meant).
    """
    words = lambda t: {w for w in re.findall(r"[a-z0-9%]+", t.lower()) if len(w) > 3}  # noqa: E731
    sents = sentences(source)
    bags = [words(s) for s in sents]
    df = Counter(w for bag in bags for w in bag)
    asked, said = words(question), words(answer)
    score = [sum(math.log((1 + len(sents)) / df[w]) * (1 + (w in asked)) for w in bag & (asked | said))
             for bag in bags]
    ranked = [i for i in sorted(range(len(sents)), key=lambda i: -score[i]) if score[i] > 0][:k]
    return " ".join(answer_sentence(sents[i]) for i in sorted(ranked or [0]))


def reordered(source: str, k: int) -> str:
    """The passage with its sentences in the k-th deterministic order (0 = as written)."""
    sents = sentences(source)
    if k == 0 or len(sents) < 2:
        return source
    order, rng = list(range(len(sents))), random.Random(k)
    while order == sorted(order):
        rng.shuffle(order)
    return " ".join(sents[i] for i in order)


def with_orders(pairs: list[Pair], orders: int) -> list[Pair]:
    """Pairs whose prompt shows the whole passage, shown round-robin in `orders` sentence orders."""
    return [dataclasses.replace(p, context=reordered(p.source, i % orders)) if p.context is None and i % orders else p
            for i, p in enumerate(pairs)]


def augment(pairs: list[Pair], cfg: AugmentConfig, abstain_answer: str) -> list[Pair]:
    """The user's pairs (repeated), plus variants, passage pairs and abstentions; no duplicate questions."""
    out = [p for p in pairs for _ in range(cfg.seed_repeats)]
    seen = {normalize_question(p.question) for p in pairs}

    def add(p: Pair) -> None:
        key = normalize_question(p.question)
        if key not in seen:
            seen.add(key)
            out.append(p)

    in_other_words = ({s: rewording(s, True, organisations=True) for s in dict.fromkeys(p.source for p in pairs)}
                      if cfg.synonym_variants else {})
    for i, p in enumerate(pairs):
        grounded = cfg.variant_answers == "grounded" and passage_covers(p.question, p.source)
        answer = grounded_answer(p.question, p.answer, p.source) if grounded else p.answer  # uncovered: the user's
        other = in_other_words[p.source](p.question) if cfg.synonym_variants else None
        for q in reword(p.question, cfg.question_variants, offset=i) + ([other] if other else []):
            add(Pair(q, answer, p.source, p.path, p.line, kind="variant", answer_line=p.answer_line))
    for source in dict.fromkeys(p.source for p in pairs):
        origin = pairs[0].path
        if cfg.passage_questions:
            passage = passage_pairs(source, f"{origin}#passage", abstain_answer, cfg.participle_questions,
                                    cfg.keyword_questions, cfg.factoid_questions, cfg.referent_questions,
                                    cfg.partner_questions, cfg.false_premises, cfg.false_premise_details)
            known = " ".join(f"{p.question} {p.answer}" for p in pairs if p.source == source)
            for p in (passage + swap_pairs(source, passage, known, cfg.swap_questions, abstain_answer, f"{origin}#swap")
                      + compound_pairs(passage, cfg.compound_questions, f"{origin}#compound")):
                add(p)
            for p in ((unstated_pairs(source, abstain_answer, f"{origin}#unstated") if cfg.unstated_questions else [])
                      + title_pairs(source, cfg.title_twins, f"{origin}#title")
                      + (mention_pairs(source, f"{origin}#mention") if cfg.mention_questions else [])):
                add(p)
        if cfg.missing_evidence:
            out += evidence_pairs(source, f"{origin}#evidence", abstain_answer, cfg.missing_evidence,
                                  cfg.evidence_kept)
        out += detail_pairs(source, f"{origin}#detail", abstain_answer, cfg.missing_details)
        for p in abstention_pairs(source, cfg.abstention, abstain_answer, f"{origin}#abstain"):
            add(p)
    if not cfg.abstention_reasons:
        out = [dataclasses.replace(p, answer=abstain_answer) if p.kind == "abstain" else p for p in out]
    return with_orders(out, cfg.passage_orders)
