"""The signals `consistency` is built from. Each is a number in [0, 1], higher = more consistent.

* `support`: every answer sentence is aligned to the unit of evidence (one or two adjacent sentences of
  the source or the reference) that supports it best, by content-word precision and MiniLM cosine;
  the signal is the weakest sentence's support.
* `number_precision`, `entity_precision`: share of the answer's numbers / names found in the evidence.
* `polarity`: 0 when an answer sentence says the opposite of its aligned unit (increase vs cut, fails
  vs agrees, a negation added or dropped), else 1.
* `role`: 0 when an answer sentence swaps who did what (the actor and the object traded places around
  the same verb, or one name put in another's place), else 1.
* `token_recall`, `token_f1`: SQuAD-normalised token overlap with the reference.
* `rougeL`: ROUGE-L F-measure against the reference (`rouge-score`, stemmed).
* `semantic`: MiniLM cosine of answer and reference.
* `abstained`: the answer says the source does not say (a flag, not a score).

Each function returns its value and the spans it flagged, so every score can be traced to words.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from groundtune.evaluation.text import (
    NEGATIONS, STOPWORDS, content_stems, name_vocabulary, names, numbers, sentence_spans, squad_tokens, stem,
    words,
)

# --------------------------------------------------------------------------------------------------
# Sentence alignment and support


@dataclass
class Unit:
    """One sentence, or two adjacent ones, of the source or the reference."""

    text: str
    origin: str
    stems: frozenset[str]
    pair: bool = False


@dataclass
class Aligned:
    """An answer sentence and the evidence unit that supports it best."""

    text: str
    start: int
    end: int
    unit: Unit | None
    lexical: float
    semantic: float

    @property
    def support(self) -> float:
        return 0.5 * (self.lexical + self.semantic)


PAIR_MARGIN = 0.1
"""A two-sentence unit must beat the best single sentence by this much (lexical + cosine) to be chosen."""


def evidence_units(text: str, origin: str) -> list[Unit]:
    """Sentences of `text`, plus each pair of adjacent sentences (answers often merge two)."""
    sents = [text[s:e] for s, e in sentence_spans(text)]
    pairs = [f"{a} {b}" for a, b in zip(sents, sents[1:])]
    return [Unit(t, origin, frozenset(content_stems(t)), pair=i >= len(sents)) for i, t in enumerate(sents + pairs)]


def lexical_precision(stems: set[str], unit: Unit) -> float:
    return len(stems & unit.stems) / len(stems) if stems else 1.0


def align(answer: str, units: list[Unit], embed) -> list[Aligned]:
    """Align each answer sentence with content words to its best unit (mean of lexical and cosine)."""
    spans = [(s, e) for s, e in sentence_spans(answer) if content_stems(answer[s:e])]
    if not spans or not units:
        return [Aligned(answer[s:e], s, e, None, 0.0, 0.0) for s, e in spans]
    sent_vecs = embed([answer[s:e] for s, e in spans])
    unit_vecs = embed([u.text for u in units])
    cosine = np.clip(sent_vecs @ unit_vecs.T, 0.0, 1.0)
    out = []
    for i, (s, e) in enumerate(spans):
        stems = content_stems(answer[s:e])
        lexical = np.array([lexical_precision(stems, u) for u in units])
        score = lexical + cosine[i]
        best = int(np.argmax(score))
        singles = [j for j, u in enumerate(units) if not u.pair]
        if units[best].pair and singles:  # a two-sentence unit only when it clearly beats one sentence
            single = max(singles, key=lambda j: score[j])
            best = best if score[best] > score[single] + PAIR_MARGIN else single
        out.append(Aligned(answer[s:e], s, e, units[best], float(lexical[best]), float(cosine[i, best])))
    return out


CLAUSE_BREAK = re.compile(r"[,;:]\s+|\s+(?:and|but|while|whereas|although|who|which|with)\s+")
MIN_CLAUSE_WORDS = 3


def clause_spans(answer: str) -> list[tuple[int, int]]:
    """Clauses of each sentence (split at commas and conjunctions); pieces under 3 content words join the one before."""
    out: list[list[int]] = []
    for s, e in sentence_spans(answer):
        cuts = [s] + [m.start() for m in CLAUSE_BREAK.finditer(answer, s, e)] + [e]
        first = True
        for a, b in zip(cuts, cuts[1:]):
            if out and not first and len(content_stems(answer[a:b])) < MIN_CLAUSE_WORDS:
                out[-1][1] = b
            else:
                out.append([a, b])
            first = False
    return [(a, b) for a, b in out if len(content_stems(answer[a:b])) >= MIN_CLAUSE_WORDS]


def clause_support(answer: str, units: list[Unit], embed) -> tuple[float, dict | None]:
    """The weakest clause's support (mean of lexical precision and cosine against its best unit)."""
    spans = clause_spans(answer)
    if not spans or not units:
        return 1.0, None
    texts = [answer[a:b].strip(" ,;:") for a, b in spans]
    cosine = np.clip(embed(texts) @ embed([u.text for u in units]).T, 0.0, 1.0)
    scores = []
    for i, text in enumerate(texts):
        stems = content_stems(text)
        scores.append(float(max(0.5 * (lexical_precision(stems, u) + cosine[i, j]) for j, u in enumerate(units))))
    worst = int(np.argmin(scores))
    a, b = spans[worst]
    return float(scores[worst]), {"text": answer[a:b], "start": a, "end": b, "support": round(scores[worst], 3)}


def support(aligned: list[Aligned]) -> float:
    """The weakest answer sentence's support (1.0 for an answer without content words)."""
    return min((a.support for a in aligned), default=1.0)


# --------------------------------------------------------------------------------------------------
# Numbers and names


def number_precision(answer: str, evidence: str) -> tuple[float, list[dict]]:
    """Share of the answer's numbers found in the evidence; the others as spans.

    A number is found when one of its values (see `Number.values`) occurs in the evidence, or is the
    sum or difference of two numbers of one evidence sentence ("31 to 14" supports "by 17 votes").
    """
    found = numbers(answer)
    known: set[tuple[str, float]] = set()
    for s, e in sentence_spans(evidence):
        here = numbers(evidence[s:e])
        known |= {v for n in here for v in n.values()}
        known |= {("", round(f(a.value, b.value), 9)) for a in here for b in here if a is not b
                  for f in (lambda x, y: x + y, lambda x, y: abs(x - y))}
    missing = [n.span() for n in found if not n.values() & known]
    return (1.0 - len(missing) / len(found) if found else 1.0), missing


def entity_precision(answer: str, evidence: str) -> tuple[float, list[dict]]:
    """Share of the answer's names whose every word occurs in the evidence; the others as spans."""
    found = names(answer)
    vocab = name_vocabulary(evidence)
    missing = [n.span() for n in found if not set(n.keys) <= vocab]
    return (1.0 - len(missing) / len(found) if found else 1.0), missing


# --------------------------------------------------------------------------------------------------
# Polarity: increase vs cut, agrees vs fails, a negation added or dropped

OPPOSITES = [  # (positive, negative) word groups, compared by stem
    ("increase raise boost ramp expand grow grew grown strengthen bolster enhance more higher additional add rise "
     "rose risen extra step", "decrease cut reduce lower less fewer weaken shrink slash decline fall fell fallen drop "
     "curb downplay"),
    ("welcome praise support endorse back favor favour applaud approve emphasize emphasise stress highlight",
     "criticize criticise condemn oppose denounce reject disapprove veto downplay"),
    ("agree accept succeed comply", "fail refuse reject"),
    ("allow permit lift", "ban forbid prohibit block"),
    ("continue sustain sustained maintain keep", "stop halt cease suspend abandon withdraw end"),
    ("unity unite unified united", "division divide divided split"),
    ("win won", "lose lost"),
    ("confirm", "deny"),
    ("if provided providing only", "unless"),
    ("forefront lead leading", "sidelines"),
    ("before", "after"),
]
# Phrasal verbs read as one word before comparing.
PHRASES = [(r"\bplay(?:s|ed|ing)?\s+down\b", "downplay"), (r"\bwind(?:s|ed|ing)?\s+down\b", "halt"),
           (r"\b(?:scale|cut)(?:s|ed|ing)?\s+(?:down|back)\b", "reduce"),
           (r"\b(?:ramp|step)(?:s|ed|ing)?\s+up\b", "increase"), (r"\bas\s+long\s+as\b", "if")]


@functools.lru_cache(maxsize=1)
def _opposite_stems() -> list[tuple[frozenset[str], frozenset[str]]]:
    return [(frozenset(stem(w) for w in pos.split()), frozenset(stem(w) for w in neg.split()))
            for pos, neg in OPPOSITES]


def _phrases(text: str) -> str:
    for pattern, word in PHRASES:
        text = re.sub(pattern, word, text, flags=re.IGNORECASE)
    return text


def _content_words(text: str) -> list[tuple[str, int, int]]:
    """(stem, start, end) of content words, negation cues kept as `!`."""
    out = []
    for w, s, e in words(text):
        low = w.lower().replace("’", "'")
        if low in NEGATIONS or low.endswith("n't"):
            out.append(("!", s, e))
        elif low not in STOPWORDS or low in ("only", "before", "after", "if"):
            out.append((stem(low), s, e))
    return out


def negated(text: str, window: int = 2) -> set[str]:
    """Stems of the content words within `window` words after a negation cue ("fails to *negotiate*")."""
    toks = _content_words(text)
    out = set()
    for i, (w, _, _) in enumerate(toks):
        if w == "!":
            out.update(t for t, _, _ in toks[i + 1:i + 1 + window] if t != "!")
    return out


def _directions(text: str) -> list[tuple[int, int, str]]:
    """(group, direction +1/-1, word) for each opposite-group word; a negated word counts reversed."""
    text = _phrases(text)
    neg = negated(text)
    out = []
    for w, _, _ in _content_words(text):
        for g, (pos, negs) in enumerate(_opposite_stems()):
            sign = 1 if w in pos else -1 if w in negs else 0
            if sign:
                out.append((g, -sign if w in neg else sign, w))
    return out


def polarity_flips(aligned: list[Aligned]) -> list[dict]:
    """Answer sentences that take a direction their evidence only takes the other way, or flip a negation.

    A direction word of the answer ("cut") is a flip when its aligned evidence has words of the same
    group only in the opposite direction ("increase"); a content word negated on one side only
    ("fails to negotiate" vs "agrees to negotiate") is a flip too.
    """
    flips = []
    for a in aligned:
        if a.unit is None:
            continue
        theirs = _directions(a.unit.text)
        for g, sign, word in _directions(a.text):
            signs = {s for tg, s, _ in theirs if tg == g}
            if signs and sign not in signs:
                flips.append(_flip(a, "direction", [word] + sorted({w for tg, _, w in theirs if tg == g})))
                break
        else:
            shared = content_stems(a.text) & a.unit.stems
            disagree = (negated(a.text) ^ negated(a.unit.text)) & shared
            if disagree:
                flips.append(_flip(a, "negation", sorted(disagree)))
    return flips


def _flip(a: Aligned, kind: str, detail) -> dict:
    return {"kind": kind, "text": a.text, "start": a.start, "end": a.end, "evidence": a.unit.text,
            "detail": list(detail) if not isinstance(detail, str) else detail}


# --------------------------------------------------------------------------------------------------
# Roles: who did what


@dataclass
class _Mention:
    keys: frozenset[str]
    start: int
    end: int
    before: str | None = None
    after: str | None = None
    text: str = field(default="")


def _mentions(text: str) -> list[_Mention]:
    toks = [(w, s, e) for w, s, e in _content_words(text) if w != "!"]
    out = []
    for n in names(text, initial=True):
        before = [w for w, s, e in toks if e <= n.start]
        after = [w for w, s, e in toks if s >= n.end and not text[s].isupper()]
        out.append(_Mention(frozenset(n.keys), n.start, n.end, before[-1] if before else None,
                            after[0] if after else None, n.text))
    return out


def _same(a: _Mention, b: _Mention) -> bool:
    return bool(a.keys & b.keys)


def _swapped(s_text: str, e_text: str, sm: list[_Mention], em: list[_Mention]) -> dict | None:
    """Two names on opposite sides of the same verb in the answer and in the evidence."""
    s_words = [(w, st) for w, st, _ in _content_words(s_text) if w != "!"]
    e_words = [(w, st) for w, st, _ in _content_words(e_text) if w != "!"]
    for i, a in enumerate(sm):
        for b in sm[i + 1:]:
            if _same(a, b):
                continue
            ea = next((m for m in em if _same(m, a)), None)
            eb = next((m for m in em if _same(m, b)), None)
            if ea is None or eb is None or not eb.end <= ea.start:
                continue
            between_s = _near_both(s_words, a.end, b.start)
            between_e = _near_both(e_words, eb.end, ea.start)
            if ("by" in s_text[a.end:b.start].split()) != ("by" in e_text[eb.end:ea.start].split()):
                continue  # one of them is passive: the order says nothing about roles
            shared = (between_s & between_e) - set(a.keys | b.keys)
            if shared:
                return {"answer": [a.text, b.text], "evidence": [eb.text, ea.text], "verb": sorted(shared)}
    return None


SWAP_WINDOW = 2
"""Content words allowed between a name and the verb on each side of a swap ("Germany [] welcomed [] Rutte")."""


def _near_both(words_at: list[tuple[str, int]], left_end: int, right_start: int) -> set[str]:
    """Words between two names that have at most SWAP_WINDOW content words between them and either name."""
    between = [w for w, st in words_at if left_end <= st < right_start]
    return {w for i, w in enumerate(between) if i <= SWAP_WINDOW and len(between) - 1 - i <= SWAP_WINDOW}


def _substituted(sm: list[_Mention], em: list[_Mention]) -> dict | None:
    """A name of the answer in the place (same neighbouring word) of a different name of the evidence."""
    for a in sm:
        if any(_same(a, m) for m in em):
            continue
        for b in em:
            if any(_same(b, m) for m in sm):
                continue
            if (a.after and a.after == b.after) or (a.before and a.before == b.before):
                return {"answer": [a.text], "evidence": [b.text], "context": a.after if a.after == b.after else a.before}
    return None


def role_flips(aligned: list[Aligned]) -> list[dict]:
    """Answer sentences that swap actor and object, or put one name in another's place."""
    flips = []
    for a in aligned:
        if a.unit is None:
            continue
        sm, em = _mentions(a.text), _mentions(a.unit.text)
        found = _swapped(a.text, a.unit.text, sm, em) or _substituted(sm, em)
        if found:
            flips.append({"text": a.text, "start": a.start, "end": a.end, "evidence": a.unit.text, **found})
    return flips


# --------------------------------------------------------------------------------------------------
# Against the reference


def token_scores(answer: str, reference: str) -> tuple[float, float]:
    """(recall, F1) of SQuAD-normalised tokens against the reference."""
    pred, ref = squad_tokens(answer), squad_tokens(reference)
    common = sum((Counter(pred) & Counter(ref)).values())
    if not pred or not ref or common == 0:
        return 0.0, 0.0
    precision, recall = common / len(pred), common / len(ref)
    return recall, 2 * precision * recall / (precision + recall)


@functools.lru_cache(maxsize=1)
def _rouge():
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)


def rouge_l(answer: str, reference: str) -> float:
    return float(_rouge().score(reference, answer)["rougeL"].fmeasure)
