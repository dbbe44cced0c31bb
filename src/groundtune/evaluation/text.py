"""The text pieces every signal is built from: sentences, content-word stems, numbers, names, abstentions.

All of it is small, deterministic and offline. Spans carry character offsets into the text they came
from, so a report can point at the exact words it flagged.
"""

from __future__ import annotations

import functools
import re
import string
from dataclasses import dataclass

# --------------------------------------------------------------------------------------------------
# Sentences and words


@functools.lru_cache(maxsize=4096)
def sentence_spans(text: str) -> tuple[tuple[int, int], ...]:
    """(start, end) of each sentence (pysbd, which keeps 'U.S.' and 'Dr.' inside a sentence)."""
    import pysbd

    spans, pos = [], 0
    for sent in pysbd.Segmenter(language="en", clean=False).segment(text):
        stripped = sent.strip()
        if not stripped:
            continue
        start = text.find(stripped, pos)
        if start < 0:  # pysbd altered the text (it should not with clean=False); fall back to a search from 0
            start = max(text.find(stripped), 0)
        spans.append((start, start + len(stripped)))
        pos = start + len(stripped)
    return tuple(spans)


def sentences(text: str) -> list[str]:
    return [text[s:e] for s, e in sentence_spans(text)]


WORD = re.compile(r"[A-Za-z][A-Za-z'’]*(?:-[A-Za-z]+)*|\d[\d,]*(?:\.\d+)?")

# Function words: dropped before comparing content. Negations are kept out of this list on purpose
# (they are content for the polarity check) but are dropped from lexical overlap separately.
STOPWORDS = frozenset("""
a an the and or but if then so as of in on at to for from by with without into onto about over under
after before between during through since until while than that this these those there here which who
whom whose what when where why how is are was were be been being am do does did doing done has have
had having will would shall should can could may might must it its it's he him his she her hers they
them their theirs we us our ours you your yours i me my mine one ones also very more most such just
only other another each every all any both some many much own same too again further once up down out
off very s t also well even still yet already whether either per via upon among amongst against toward
towards within across along around including include includes included like
""".split())

NEGATIONS = frozenset("""
not no never neither nor without cannot can't won't don't doesn't didn't isn't aren't wasn't weren't
hasn't haven't hadn't shouldn't wouldn't couldn't nothing none nobody fail fails failed failing refuse
refuses refused refusing reject rejects rejected rejecting deny denies denied denying lack lacks lacked
""".split())


@functools.lru_cache(maxsize=1)
def _stemmer():
    from nltk.stem.porter import PorterStemmer  # nltk ships with rouge-score; the stemmer needs no data

    return PorterStemmer()


@functools.lru_cache(maxsize=65536)
def stem(word: str) -> str:
    return _stemmer().stem(word.lower().replace("’", "'").removesuffix("'s"))


def words(text: str) -> list[tuple[str, int, int]]:
    """(word, start, end) for each word or digit group."""
    return [(m.group(0), m.start(), m.end()) for m in WORD.finditer(text)]


def content_stems(text: str) -> set[str]:
    """Stems of the content words (no function words, no negations) plus normalised numbers as `#value`."""
    out = {stem(w) for w, _, _ in words(text)
           if not w[0].isdigit() and w.lower() not in STOPWORDS and w.lower() not in NEGATIONS
           and w.lower() not in NUMBER_WORDS}
    out.discard("")
    return out | {f"#{n.value:g}" for n in numbers(text)}


# --------------------------------------------------------------------------------------------------
# Numbers: "two" = "2", "400%" = "400 percent" = "four hundred percent", "2.5 million" = 2500000


UNITS = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen".split())}
TENS = {w: 10 * (i + 2) for i, w in enumerate("twenty thirty forty fifty sixty seventy eighty ninety".split())}
SCALES = {"hundred": 100, "thousand": 1_000, "million": 1_000_000, "billion": 1_000_000_000,
          "trillion": 1_000_000_000_000}
NUMBER_WORDS = frozenset(UNITS) | frozenset(TENS) | frozenset(SCALES) | {"percent", "per", "cent"}
_WORDNUM = r"(?:" + "|".join(sorted(list(UNITS) + list(TENS) + list(SCALES), key=len, reverse=True)) + r")"
NUMBER = re.compile(
    r"(?:(?P<digits>(?<![\w.])\d{1,3}(?:,\d{3})+(?:\.\d+)?(?![\w])|(?<![\w.])\d+(?:\.\d+)?(?:st|nd|rd|th)?(?![\w]))"
    r"|(?P<words>\b" + _WORDNUM + r"(?:(?:\s+and\s+|[\s-]+)" + _WORDNUM + r")*\b))"
    r"(?P<scale>\s+(?:thousand|million|billion|trillion)\b)?"
    r"(?P<percent>\s*%|\s+per\s?cent\b)?",
    re.IGNORECASE)
# "one" is a pronoun as often as a number: "one of the", "no one", "the one who".
_NOT_A_NUMBER = re.compile(r"^(one)$", re.IGNORECASE)
_ONE_PRONOUN_BEFORE = re.compile(r"\b(no|the|this|that|any|each|every|which|someone|anyone|every)\s+$", re.IGNORECASE)
_ONE_PRONOUN_AFTER = re.compile(r"^\s+(of|another|who|that|which|is|can|must|should)\b", re.IGNORECASE)


@dataclass(frozen=True)
class Number:
    text: str
    start: int
    end: int
    value: float
    percent: bool
    fraction: bool = False

    def span(self) -> dict:
        return {"text": self.text, "start": self.start, "end": self.end, "value": self.value, "percent": self.percent}

    def values(self) -> set[tuple[str, float]]:
        """Keys two numbers match on: "60 percent" = "three fifths" = "60"; "400%" is not "four"."""
        if self.percent:
            return {("%", self.value)}
        if self.fraction:
            return {("%", round(self.value * 100, 9))}
        return {("", self.value), ("%", self.value)}


def words_to_value(phrase: str) -> float | None:
    """'four hundred' -> 400, 'twenty-five' -> 25, 'one hundred and twenty' -> 120."""
    total, current = 0, 0
    for w in re.split(r"[\s-]+", phrase.lower()):
        if w == "and" or not w:
            continue
        if w in UNITS:
            current += UNITS[w]
        elif w in TENS:
            current += TENS[w]
        elif w == "hundred":
            current = max(current, 1) * 100
        elif w in SCALES:
            total += max(current, 1) * SCALES[w]
            current = 0
        else:
            return None
    return float(total + current)


def numbers(text: str) -> list[Number]:
    """Every number in `text`, normalised to a value (percent noted separately)."""
    found = []
    for m in NUMBER.finditer(text):
        if m.group("digits"):
            raw = re.sub(r"(st|nd|rd|th)$", "", m.group("digits").replace(",", ""))
            value = float(raw)
        else:
            phrase = m.group("words")
            if _NOT_A_NUMBER.match(phrase) and (_ONE_PRONOUN_BEFORE.search(text[:m.start()])
                                                or _ONE_PRONOUN_AFTER.match(text[m.end("words"):])):
                continue
            value = words_to_value(phrase)
            if value is None:
                continue
        if m.group("scale"):
            value *= SCALES[m.group("scale").strip().lower()]
        end = m.end()
        found.append(Number(text[m.start():end], m.start(), end, value, bool(m.group("percent"))))
    for m in FRACTION.finditer(text):
        if not m.group("count") and not m.group("part").lower().startswith("hal"):
            continue  # "the third man" is an ordinal, not a fraction
        count = 1.0 if (m.group("count") or "a").lower() in ("a", "an", "one") else float(UNITS[m.group("count").lower()])
        value = round(count / FRACTIONS[m.group("part").lower().removesuffix("s").replace("halve", "half")], 9)
        found = [n for n in found if not m.start() <= n.start < m.end()]  # "three" in "three fifths"
        found.append(Number(m.group(0), m.start(), m.end(), value, False, fraction=True))
    return sorted(found, key=lambda n: n.start)


FRACTIONS = {"half": 2, "third": 3, "quarter": 4, "fifth": 5, "tenth": 10}
FRACTION = re.compile(
    r"\b(?:(?P<count>a|an|one|two|three|four|five|six|seven|eight|nine)[\s-]+)?"
    r"(?P<part>halves|half|thirds?|quarters?|fifths?|tenths?)\b", re.IGNORECASE)


# --------------------------------------------------------------------------------------------------
# Names: capitalised spans, minus sentence-initial words that are not names


# Capitalised at the start of a sentence without being a name.
SENTENCE_STARTS = STOPWORDS | frozenset("""
additionally furthermore moreover however meanwhile overall therefore thus hence although though
despite amid according following given based yes no in on at this these those his her their its our
such both many several some allies while whereas instead indeed finally first second third lastly
notably specifically similarly likewise consequently ultimately currently recently today
""".split())
CAPITALISED = re.compile(
    r"(?:[A-Z]\.){2,}|[A-Z][\w'’-]*(?:\s+(?:of\s+)?(?:[A-Z]\.){2,}|\s+(?:of\s+(?:the\s+)?)?[A-Z][\w'’-]*)*")
# Canonical names for common spellings of the same place or body.
ALIASES = {
    "united states of america": "us", "united states": "us", "u.s.a.": "us", "u.s.": "us", "usa": "us",
    "america": "us", "american": "us", "americans": "us",
    "united kingdom": "uk", "u.k.": "uk", "britain": "uk", "great britain": "uk", "british": "uk",
    "european union": "eu", "e.u.": "eu",
}
_ALIAS = re.compile(r"(?<![\w.])(" + "|".join(re.escape(a) for a in sorted(ALIASES, key=len, reverse=True))
                    + r")(?![\w])", re.IGNORECASE)
_DEMONYM_SUFFIXES = ("ians", "ian", "ans", "ese", "ish", "an", "ia", "y", "e", "a", "s")
# Demonyms that suffix-stripping cannot bring back to their country.
DEMONYMS = {
    "polish": "poland", "dutch": "netherlands", "french": "france", "swedish": "sweden", "danish": "denmark",
    "norwegian": "norway", "finnish": "finland", "swiss": "switzerland", "spanish": "spain", "turkish": "turkey",
    "greek": "greece", "irish": "ireland", "israeli": "israel", "iraqi": "iraq", "pakistani": "pakistan",
    "afghan": "afghanistan", "belgian": "belgium", "czech": "czechia", "welsh": "wales", "scottish": "scotland",
    "english": "england", "portuguese": "portugal", "lithuanian": "lithuania", "estonian": "estonia",
    "latvian": "latvia", "hungarian": "hungary", "romanian": "romania", "saudi": "saudi arabia",
    "filipino": "philippines", "thai": "thailand", "vietnamese": "vietnam", "icelandic": "iceland",
}


@dataclass(frozen=True)
class Name:
    text: str
    start: int
    end: int
    keys: tuple[str, ...]
    """Normalised tokens; the name is supported when every key occurs in the evidence."""

    def span(self) -> dict:
        return {"text": self.text, "start": self.start, "end": self.end}


def name_key(word: str) -> str:
    """'Ukrainian' and 'Ukraine' -> 'ukrain'; 'Germany', 'German' -> 'germ'; "Rutte's" -> 'rutt'."""
    w = word.lower().replace("’", "'").removesuffix("'s").strip("'.")
    w = DEMONYMS.get(w, w)
    if w in ALIASES:
        return ALIASES[w]
    changed = True
    while changed:
        changed = False
        for suffix in _DEMONYM_SUFFIXES:
            if w.endswith(suffix) and len(w) - len(suffix) >= 4:
                w = w[: -len(suffix)]
                changed = True
                break
    return w


def _name_tokens(text: str, capitalised_only: bool = False) -> list[str]:
    text = _ALIAS.sub(lambda m: " " + ALIASES[m.group(1).lower()].upper() + " ", text)
    return [name_key(w) for w in re.findall(r"[^\W\d_][\w'’.]*[^\W\d_]|[^\W\d_]", text)
            if w.lower() not in ("of", "the") and (w[0].isupper() or not capitalised_only)]


def names(text: str, initial: bool = False) -> list[Name]:
    """Capitalised spans that look like names, places or bodies ("Mark Rutte", "U.S.", "NATO").

    A lone capitalised word opening a sentence ("Positively.", "Anyone who ...") counts only when it
    is an acronym, takes a possessive ("Germany's"), is capitalised elsewhere in `text` too, or `initial` is set (role checks, which
    compare two sentences and so tolerate a common word taken for a name).
    """
    starts = {s for s, _ in sentence_spans(text)} if text else set()
    found = []
    for m in CAPITALISED.finditer(text):
        # "Germany's Patriot" is two names: split at a possessive
        pos = m.start()
        for piece in re.split(r"(['’]s\s+)", m.group(0)):
            start, pos = pos, pos + len(piece)
            name = _name_at(text, piece, start, starts) if not re.fullmatch(r"['’]s\s+", piece) else None
            if name is not None:
                found.append(name)
    if not initial:
        inner = {n.text for n in found if n.start not in starts}
        found = [n for n in found if n.start not in starts or " " in n.text or n.text in inner
                 or n.text.replace(".", "").isupper() or text[n.end:n.end + 2] in ("'s", "’s")]
    return found


def _name_at(text: str, span: str, start: int, starts: set[int]) -> Name | None:
    """A Name for `span` at `start`, or None when it is only a capitalised function word opening a sentence."""
    if not span or not span[0].isupper():
        return None
    first = span.split()[0]
    at_start = start in starts or start == 0 or text[:start].rstrip().endswith((":", '"', "(", "-"))
    if at_start and first.lower().strip("'’") in SENTENCE_STARTS:
        rest = span[len(first):].lstrip()  # "During NATO talks" -> "NATO"
        if not rest or not rest[0].isupper():
            return None
        start, span, at_start = start + len(span) - len(rest), rest, False
    if at_start:
        starts.add(start)
    span = re.sub(r"['’]s?$", "", span)
    if span == "I":
        return None
    keys = tuple(k for k in _name_tokens(span, capitalised_only=True) if k)
    return Name(span, start, start + len(span), keys) if keys else None


def name_vocabulary(text: str) -> set[str]:
    """Every word of `text` as a name key, case-insensitive: a name is supported if its keys are all here."""
    return set(_name_tokens(text))


# --------------------------------------------------------------------------------------------------
# Abstentions: "The source does not say."


_DOC = r"(?:source|passage|text|article|document|context|report)"
_SAYS = (r"(?:say|says|said|mention|specify|state|provide|contain|include|give|discuss|address|cover|describe|"
         r"indicate|offer|talk|list|name|report|reveal|explain|detail|identify|answer|put\s+a)")
_DONT = (r"(?:does\s*n[o']t|did\s*n[o']t|doesn't|didn't|do\s+not|never)"
         r"(?:\s+(?:explicitly|directly|specifically|clearly|actually|really))?")
_STATED = r"(?:stated|mentioned|named|given|specified|covered|reported|provided|listed|disclosed|addressed|discussed)"
# Ways of saying "the source does not say" (answers rarely use these words for anything else).
ABSTENTION = re.compile(
    r"\b" + _DOC + r"\b(?:[^.;]|(?<=\b[A-Z])\.|\.(?=\S)){0,80}?\b" + _DONT + r"\s+" + _SAYS
    + r"|\b(?:it|this|that)\s+" + _DONT + r"\s+" + _SAYS
    + r"|(?:\bnot|n't)\s+" + _STATED + r"\b"
    + r"|\b" + _DOC + r"\s+(?:gives|offers|provides|contains|has|includes|makes)\s+no\b"
    + r"|\b(?:says|said|mentions|reveals)\s+nothing\b"
    + r"|\bno\s+(?:\w+\s+){0,2}(?:is|are|was|were|has\s+been)\s+(?:given|mentioned|named|stated|specified|listed)\b"
    + r"|\bno\s+(?:information|mention|details?)\s+(?:about|on|regarding|of|is|in)\b"
    + r"|\b(?:cannot|can't|can\s+not|unable\s+to)\s+(?:be\s+)?(?:determine|determined|answer|answered|tell|told|find|found)\b"
    + r"|\bunknown\b|\bi\s+(?:do\s+not|don't)\s+know\b",
    re.IGNORECASE)


def abstention_span(text: str) -> dict | None:
    """The abstention phrase in an answer ("the source does not say"), or None."""
    m = ABSTENTION.search(text)
    return {"text": m.group(0), "start": m.start(), "end": m.end()} if m else None


# --------------------------------------------------------------------------------------------------
# SQuAD normalisation (lower case, no punctuation, no articles, single spaces)


def squad_tokens(text: str) -> list[str]:
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return text.split()
