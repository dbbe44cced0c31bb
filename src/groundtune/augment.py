"""Passage-grounded augmentation: deterministic, offline, nothing invented.

Nine pairs are too few to teach a model to answer reworded questions or to refuse questions its
source cannot answer. This stage adds, from the user's pairs and the passage alone:

* `variant`: the user's questions reworded (same answer), so a rephrasing finds the same answer;
* `passage`: one question per passage sentence, answered by that sentence verbatim, so the model
  learns to answer from the source rather than from memory;
* `abstain`: questions about topics the passage never mentions, answered with `abstain_answer`.

Every added answer is either a user answer or a passage sentence, so the augmentation cannot add a
claim the user's data does not already make.
"""

from __future__ import annotations

import re
from collections import Counter

from groundtune.config import AugmentConfig
from groundtune.readers import Pair, normalize_question

# Rewordings that keep a question's meaning. Each is (prefix, whether to lower-case the first letter).
QUESTION_FRAMES = [
    ("According to the source, {q}", True),
    ("Based on the passage, {q}", True),
    ("Briefly, {q}", True),
    ("{q} Answer from the text.", False),
    ("Can you tell me: {q}", False),
    ("What does the article say: {q}", False),
]

# Topics a news passage rarely covers; any that the passage does mention are skipped.
OFF_TOPICS = [
    "the price of oil", "Japan's economy", "the Olympic Games", "climate change", "interest rates",
    "the Paris Agreement", "artificial intelligence regulation", "Brazil's election", "the World Cup",
    "a vaccine rollout", "the stock market", "India's space programme", "housing prices", "Antarctica",
    "the European Central Bank", "a hurricane", "the United Nations budget", "electric cars",
]
OFF_TOPIC_FRAMES = [
    "What does the source say about {t}?",
    "What did the passage report about {t}?",
    "How is {t} described in the text?",
]
DETAIL_FRAMES = [  # details a passage may lack; used only when the passage has no such detail at all
    ("When did this happen, according to the source?", r"\b(19|20)\d\d\b|\b(January|February|March|April|May|June|July|August|September|October|November|December|Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday|yesterday|today)\b"),
    ("How much money is involved, according to the source?", r"[$€£]|\b(dollars?|euros?|pounds?|billion|million)\b"),
    ("Who wrote the article?", r"\b(by|wrote|reporter|correspondent)\b"),
]

ENTITY = re.compile(r"\b(?:[A-Z][\w'’.-]*(?:\s+(?:of|the|and)?\s*[A-Z][\w'’.-]*)*)")


def sentences(text: str) -> list[str]:
    """Split a passage into sentences with pysbd (handles 'U.S.' and similar abbreviations)."""
    import pysbd

    return [s.strip() for s in pysbd.Segmenter(language="en", clean=False).segment(text) if s.strip()]


def reword(question: str, k: int, offset: int) -> list[str]:
    """Up to `k` rewordings of `question`, picked round-robin from QUESTION_FRAMES starting at `offset`."""
    out = []
    for i in range(len(QUESTION_FRAMES)):
        frame, lower = QUESTION_FRAMES[(offset + i) % len(QUESTION_FRAMES)]
        q = question[0].lower() + question[1:] if lower and not question[:2].isupper() else question
        out.append(frame.format(q=q))
        if len(out) == k:
            break
    return out


def _entities(sentence: str) -> list[str]:
    """Capitalised spans, minus a leading sentence-initial word that is not a name."""
    found = []
    for m in ENTITY.finditer(sentence):
        span = m.group(0).strip().rstrip(".")
        if m.start() == 0 and " " not in span and span.lower() in _COMMON_STARTS:
            continue
        found.append(re.sub(r"['’]s$", "", span))
    return found


_COMMON_STARTS = {"in", "the", "a", "an", "furthermore", "additionally", "amid", "moreover", "however", "also",
                  "meanwhile", "this", "these", "it", "he", "she", "they", "on", "at", "for"}


def passage_pairs(source: str, path: str) -> list[Pair]:
    """One question per sentence, about the name most specific to that sentence; answer = the sentence."""
    sents = sentences(source)
    counts = Counter(e for s in sents for e in set(_entities(s)))
    pairs = []
    for i, sent in enumerate(sents):
        own = [e for e in _entities(sent) if counts[e] == 1]
        topic = own[0] if own else None
        if topic is None:
            numbers = re.findall(r"\d[\d,.%]*", sent)
            topic = numbers[0] if numbers else None
        if topic is None:
            continue
        pairs.append(Pair(f"What does the source say about {topic}?", sent, source, path, i + 1, kind="passage"))
    return pairs


def abstention_pairs(source: str, n: int, answer: str, path: str) -> list[Pair]:
    """`n` questions the passage cannot answer: off-topic subjects and missing kinds of detail."""
    lowered = source.lower()
    questions = [q for q, pattern in DETAIL_FRAMES if not re.search(pattern, source, flags=re.IGNORECASE)]
    topics = [t for t in OFF_TOPICS if not any(w in lowered for w in re.findall(r"[a-z]{4,}", t.lower()))]
    for i, topic in enumerate(topics):
        questions.append(OFF_TOPIC_FRAMES[i % len(OFF_TOPIC_FRAMES)].format(t=topic))
    return [Pair(q, answer, source, path, i + 1, kind="abstain") for i, q in enumerate(questions[:n])]


def augment(pairs: list[Pair], cfg: AugmentConfig, abstain_answer: str) -> list[Pair]:
    """The user's pairs (repeated), plus variants, passage pairs and abstentions; no duplicate questions."""
    out = [p for p in pairs for _ in range(cfg.seed_repeats)]
    seen = {normalize_question(p.question) for p in pairs}

    def add(p: Pair) -> None:
        key = normalize_question(p.question)
        if key not in seen:
            seen.add(key)
            out.append(p)

    for i, p in enumerate(pairs):
        for q in reword(p.question, cfg.question_variants, offset=i):
            add(Pair(q, p.answer, p.source, p.path, p.line, kind="variant", answer_line=p.answer_line))
    for source in dict.fromkeys(p.source for p in pairs):
        origin = pairs[0].path
        if cfg.passage_questions:
            for p in passage_pairs(source, f"{origin}#passage"):
                add(p)
        for p in abstention_pairs(source, cfg.abstention, abstain_answer, f"{origin}#abstain"):
            add(p)
    return out
