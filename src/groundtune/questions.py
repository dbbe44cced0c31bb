"""Rule-based questions from declarative news sentences (English), for passage-grounded augmentation.

A small model cannot write good questions itself (SmolLM2-135M was tried: it answers "What?"), so
this module turns "Subject [aux] [adverb] verb rest" clauses into the question forms people ask:
"What did Rutte welcome?", "Why did Rutte welcome Germany's decision?", "How did Rutte react to
Germany's decision?", "Did Rutte criticise Germany's decision?" (false premise), "What did Rutte say
about China?". `paraphrase` then swaps in generic synonyms and country metonyms (Germany -> Berlin),
so that rewordings of a question reach the same sentence. Everything is deterministic.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

AUX = {"has", "have", "had", "is", "are", "was", "were", "will", "would", "can", "could", "should", "must", "may"}
STANCE = {"welcomed", "criticised", "criticized", "praised", "condemned", "supported", "opposed", "rejected",
          "backed", "applauded", "endorsed", "questioned"}
OPPOSITE = {"welcome": "criticise", "criticise": "welcome", "criticize": "welcome", "praise": "condemn",
            "condemn": "praise", "support": "oppose", "oppose": "support", "back": "oppose", "reject": "accept",
            "accept": "reject", "endorse": "reject", "emphasize": "dismiss", "emphasise": "dismiss",
            "underline": "dismiss", "increase": "cut", "raise": "cut", "call": "refuse to call"}
PURPOSE = re.compile(r"\b(to counter|to sustain|to support|to strengthen|to bolster|in order to|so that|stating that|"
                     r"because|as a|to deter|to protect|to help|to ensure|to push|to pressure)\b")
PREPOSITIONS = {"for", "on", "to", "with", "about", "of", "in", "against", "from", "at", "into"}
TITLE_WORDS = r"(?:[A-Z][\w'’.-]*|of|the|and)"
SUBJECT = re.compile(rf"^[A-Z][\w'’.-]*(?:\s+{TITLE_WORDS})*")

# Generic synonyms for news wording (question side only). Keys are matched as whole words, case-sensitive.
SYNONYMS = {
    "Secretary General": "chief", "provide": "supply", "providing": "supplying", "additional": "extra",
    "increase": "boost", "defense spending": "military budgets", "defense": "defence", "weapons": "arms",
    "emphasized": "stressed", "emphasize": "stress", "support": "backing", "countries": "nations",
    "members": "member states", "talks": "discussions", "acquiring": "buying", "significantly": "sharply",
    "decision": "move", "necessity": "need", "consequences": "effects", "potential": "possible",
    "consistently": "repeatedly", "called for": "urged", "noted": "pointed to", "welcomed": "praised",
    "officials": "representatives", "aggression": "attacks", "deterrent": "warning", "finalize": "complete",
}
# Country -> (capital used as metonym, demonym). A generic gazetteer, not specific to any passage.
COUNTRIES = {
    "Germany": ("Berlin", "German"), "Ukraine": ("Kyiv", "Ukrainian"), "Russia": ("Moscow", "Russian"),
    "China": ("Beijing", "Chinese"), "U.S.": ("Washington", "American"), "United States": ("Washington", "American"),
    "France": ("Paris", "French"), "United Kingdom": ("London", "British"), "Britain": ("London", "British"),
    "Italy": ("Rome", "Italian"), "Spain": ("Madrid", "Spanish"), "Poland": ("Warsaw", "Polish"),
    "Japan": ("Tokyo", "Japanese"), "India": ("New Delhi", "Indian"), "Canada": ("Ottawa", "Canadian"),
    "Netherlands": ("The Hague", "Dutch"), "Turkey": ("Ankara", "Turkish"), "Iran": ("Tehran", "Iranian"),
    "Israel": ("Jerusalem", "Israeli"), "Brazil": ("Brasilia", "Brazilian"), "Sweden": ("Stockholm", "Swedish"),
    "Finland": ("Helsinki", "Finnish"), "Norway": ("Oslo", "Norwegian"), "Belgium": ("Brussels", "Belgian"),
    "Australia": ("Canberra", "Australian"), "South Korea": ("Seoul", "South Korean"), "Taiwan": ("Taipei", "Taiwanese"),
}

# Country names written with "the" ("the Netherlands"). Known gap: swap_country does not add the article where a
# question names an article-less country ("about Germany" -> "about United Kingdom"); doing so changes one question
# of the default dataset, so it waits for the next change of the recipe that is measured again anyway.
ARTICLE_NAMES = {"U.S.", "United States", "United Kingdom", "Netherlands"}

# Organisations a news passage may name, with the noun writers use for them the second time. A generic gazetteer.
ORGANISATIONS = {"NATO": "alliance", "EU": "bloc", "European Union": "bloc", "UN": "world body",
                 "United Nations": "world body", "OPEC": "cartel", "IMF": "fund", "WHO": "agency", "G7": "group"}
# Words after an organisation that make it a modifier ("NATO members" -> "alliance members"; else "the alliance").
MODIFIED = r"(?:[a-z]+s|[a-z]+ship|chief|member|summit|ally|country|state)\b"
# Generic nouns for the holder of a title ("NATO's chief"), next to the title itself.
HEADS = ["chief", "leader", "head"]

QUESTION_WORDS = {"what", "who", "whom", "whose", "which", "why", "how", "when", "where", "did", "does", "do", "tell"}
# People a news passage may not name, for the absent-entity twins of passage questions. A generic list.
PEOPLE = ["Emmanuel Macron", "Olaf Scholz", "Keir Starmer", "Jens Stoltenberg", "Giorgia Meloni", "Antonio Guterres",
          "Pedro Sanchez", "Justin Trudeau", "Mette Frederiksen", "Donald Tusk"]


@dataclass
class Clause:
    """'Subject [aux] [adverbs] verb rest', from the start of a sentence."""

    subject: str
    aux: str | None
    adverbs: str
    verb: str
    rest: str

    def short_subject(self) -> str:
        """'NATO Secretary General Mark Rutte' -> 'Rutte' (the last capitalised word of a long name)."""
        words = self.subject.split()
        return words[-1] if len(words) > 2 else self.subject

    def object_phrase(self) -> str:
        """The verb's object up to the first comma, 'to'-infinitive of purpose or 'that'-clause."""
        return re.split(r",| stating | to counter| to sustain| so that| in order to| that ", self.rest)[0].strip()


def parse_clause(sentence: str) -> Clause | None:
    """Find subject, optional auxiliary, adverbs and main verb; None when the sentence does not open
    with a capitalised subject followed by a lower-case verb."""
    s = re.sub(r"^(\w+), [^,]{3,60}, ", r"\1 ", sentence.strip().rstrip("."))  # "Rutte, in talks ..., emphasized"
    m = SUBJECT.match(s)
    if not m:
        return None
    subject = re.sub(r"\s+(?:of|the|and)$", "", m.group(0)).strip()
    words = s[len(subject):].split()
    aux = words.pop(0) if words and words[0] in AUX else None
    adverbs = []
    while words and words[0].endswith("ly") and len(words) > 1:
        adverbs.append(words.pop(0))
    if aux and words and words[0] == "been":
        aux = f"{aux} been"
        words.pop(0)
    if not words or not words[0].isalpha() or not words[0].islower() or words[0] in PREPOSITIONS:
        return None
    return Clause(subject, aux, " ".join(adverbs), words[0], " ".join(words[1:]))


def base_form(verb: str) -> str:
    """Present stem of a regular past-tense verb: welcomed -> welcome, called -> call, carried -> carry."""
    if verb.endswith("ied"):
        return verb[:-3] + "y"
    if verb.endswith("eed"):
        return verb[:-1]
    if not verb.endswith("ed"):
        return verb
    stem = verb[:-2]
    if len(stem) > 2 and stem[-1] == stem[-2] and stem[-1] not in "lsz":
        return stem[:-1]  # planned -> plan
    if len(stem) > 2 and stem[-1] not in "aeiouwy" and stem[-2] in "aeiou" and stem[-3] not in "aeiou":
        return stem + "e"  # welcomed -> welcome, noted -> note, emphasized -> emphasize
    if stem.endswith(("iz", "is", "at", "in", "v", "rg", "dg", "nc", "rc", "ns", "rs", "as")):
        return stem + "e"  # advocated -> advocate, underlined -> underline, urged -> urge
    return stem


def yes_no_question(c: Clause, obj: str) -> str:
    """'Did Rutte welcome <obj>?' or 'Has Rutte consistently called for <obj>?'."""
    asked = _ask(c.aux, c.short_subject(), c.adverbs, c.verb, obj)
    return f"{asked[0].upper()}{asked[1:]}?"


def _ask(aux: str | None, subject: str, adverbs: str, verb: str, tail: str = "") -> str:
    """Question word order: 'did Rutte welcome X' or 'has Rutte consistently called for X'."""
    if aux:
        first, *more = aux.split()
        words = [first, subject, *more, adverbs, verb, tail]
    else:
        words = ["did", subject, adverbs, base_form(verb), tail]
    return " ".join(w for w in words if w)


def clause_questions(sentence: str) -> list[tuple[str, str]]:
    """(question, kind) for one sentence; kind is 'answer' (the sentence answers it) or 'false'
    (a yes/no question whose premise the sentence contradicts)."""
    c = parse_clause(sentence)
    if c is None:
        return []
    who = c.short_subject()
    obj = c.object_phrase()
    particle = obj.split()[0] if obj.split() and obj.split()[0] in PREPOSITIONS else ""
    out = [(f"What {_ask(c.aux, who, c.adverbs, c.verb, particle)}?", "answer")]
    if obj:
        out.append((yes_no_question(c, obj), "answer"))
        opposite = OPPOSITE.get(base_form(c.verb))
        if opposite and not c.aux:
            out.append((f"Did {who} {opposite} {obj}?", "false"))
    if c.verb in STANCE and obj:
        out.append((f"How did {who} react to {obj}?", "answer"))
    if PURPOSE.search(c.rest) and obj and not particle:
        out.append((f"Why {_ask(c.aux, who, c.adverbs, c.verb, obj)}?", "answer"))
    return out


TITLE = re.compile(
    r"\b(?:(?P<org>(?:[A-Z]\.){2,}|[A-Z][A-Za-z&]+)\s+)?(?P<title>Secretary[- ]General|Prime Minister|Chancellor|President|"
    r"(?:Foreign|Defen[cs]e|Finance) Minister|Minister|Chief Executive|CEO|Mayor|Director|Governor|Chair(?:man|woman)?|"
    r"Spokes(?:wo)?man|Ambassador|Commander|Senator|Prosecutor)\s+(?P<name>[A-Z][a-z]+(?:\s+[A-Z][a-z]+){1,2})\b")


def appositions(text: str) -> list[tuple[str | None, str, str]]:
    """(organisation or None, title, name) for each title before a name ('NATO Secretary General Mark Rutte' ->
    ('NATO', 'Secretary General', 'Mark Rutte')); a capitalised article or adjective before the title is no
    organisation ('The Chancellor ...', 'Former President ...')."""
    out = []
    for m in TITLE.finditer(text):
        org = m.group("org")
        out.append((None if org in {"The", "A", "An", "In", "Former", "New"} else org, m.group("title"), m.group("name")))
    return out


def title_questions(sentence: str) -> list[tuple[str, str]]:
    """Who holds a title the sentence gives ('NATO Secretary General Mark Rutte'), asked both ways and
    answered with that apposition only: 'Who is the Secretary General of NATO?' -> 'Mark Rutte is the NATO
    Secretary General.'"""
    out = []
    for org, title, name in appositions(sentence):
        role = f"{org} {title}" if org else title
        answer = f"{name} is the {role}."
        last = name.split()[-1]
        asked = [f"Who is the {role}?", f"What is {name}'s title?", f"What is {last}'s job?"]
        if org:
            country = next((c for c, (_, adjective) in COUNTRIES.items() if adjective == org), org)  # German -> Germany
            asked.append(f"Who is the {title} of {country}?")
        out += [(q, answer) for q in asked]
    return out


# Titles a passage may not give, asked about for the title twins below. A generic list.
OTHER_TITLES = ["Chancellor of Germany", "President of France", "Secretary-General of the United Nations",
                "Prime Minister of Canada", "Foreign Minister of Russia", "Mayor of Kyiv", "Prime Minister of Italy",
                "President of the United States"]


def _title_word(title: str) -> re.Pattern:
    """The office of a title ('Prime Minister' of 'Prime Minister of Canada'), in any case and hyphenation."""
    office = title.split(" of ")[0]
    return re.compile(r"\b" + r"[- ]".join(map(re.escape, re.split(r"[- ]", office))) + r"\b", re.IGNORECASE)


def title_twins(source: str, n: int) -> list[tuple[str, str]]:
    """Questions that set the passage's titles ('NATO Secretary General Mark Rutte') against up to `n` other
    offices of OTHER_TITLES, so that a question naming an office is not taken for the one the passage gives:
    false premises 'Is Mark Rutte the Chancellor of Germany?' -> 'No. Mark Rutte is the NATO Secretary
    General.', the true premise 'Is Rutte the NATO Secretary General?' -> 'Yes. ...' and, where the title
    belongs to an organisation of ORGANISATIONS, 'Who leads NATO?' / 'Which organization does Rutte head?'."""
    out: list[tuple[str, str]] = []
    for org, title, name in appositions(source):
        role = f"{org} {title}" if org else title
        answer, last = f"{name} is the {role}.", name.split()[-1]
        others = [t for t in OTHER_TITLES if not _title_word(t).search(role)][:n]
        out += [(f"Is {name} the {t}?", f"No. {answer}") for t in others]
        out.append((f"Is {last} the {role}?", f"Yes. {answer}"))
        if org in ORGANISATIONS:
            out += [(f"Who leads {org}?", answer), (f"Which organization does {last} head?", answer)]
    return list(dict(out).items())


MENTION_FRAMES = ["Does the source mention {x}?", "Is {x} mentioned in the passage?", "Does the text say anything about {x}?"]
NAMED = {"U.S.": "the United States", "United States": "the United States", "United Kingdom": "the United Kingdom",
         "Netherlands": "the Netherlands"}  # how a question names a country


def mention_questions(sentences: list[str]) -> list[tuple[str, str]]:
    """'Does the source mention Canada?' -> 'Yes. <the first sentence naming it, by name, capital or demonym>'
    for each country of COUNTRIES and organisation of ORGANISATIONS the sentences name: the answerable twins
    of the absent-entity abstentions ('The source does not say; it does not mention Japan.'), so that whether
    the source names something is looked up in the passage, not guessed from the question's form."""
    out, asked = [], set()
    countries = [country_forms(s) for s in sentences]
    for name in [*COUNTRIES, *ORGANISATIONS]:
        shown = NAMED.get(name, name)
        found = [s for s, named in zip(sentences, countries)
                 if (name in named if name in COUNTRIES else _mention(name).search(s))]
        if found and shown not in asked:
            asked.add(shown)
            out.append((MENTION_FRAMES[len(out) % len(MENTION_FRAMES)].format(x=shown), f"Yes. {found[0]}"))
    return out


# Plural nouns for people or bodies a news passage often leaves unnamed ("Ukrainian officials"). A generic list.
GROUP_NOUNS = ["officials", "leaders", "diplomats", "ministers", "lawmakers", "members", "allies", "troops",
               "soldiers", "experts", "negotiators", "countries", "companies", "governments"]
RESPONSE = re.compile(r"\b(?:responded|reacted|replied|retorted|in response|reaction)\b", re.IGNORECASE)  # a reported reaction
REACTION_FRAMES = ["How did {x} react to what {s} said?", "What response did {x} give to {s}?"]


def unstated_questions(sentence: str, subject: str, known: str, turn: int = 0, asked: set | None = None
                       ) -> list[tuple[str, str]]:
    """(question, what the answer says is missing) for two details a news sentence names without giving them:
    how another party it names reacted ('How did Russia react to what Rutte said?' -> 'how Russia reacted'),
    unless `known` (the passage) reports a reaction at all; and who the unnamed members of a
    group are ('Ukrainian officials' -> 'Which Ukrainian officials does the source name?' -> 'the Ukrainian
    officials by name'). `turn` picks the wording and `asked` (updated) the parties already asked about, so
    that a passage's sentences vary."""
    asked = set() if asked is None else asked
    out = []
    named = country_forms(sentence)
    parties = list(dict.fromkeys(NAMED.get(c, c) for c in COUNTRIES if c in named and c not in subject))
    if parties and not RESPONSE.search(known):
        x = next((p for p in parties if p not in asked), parties[turn % len(parties)])
        asked.add(x)
        out.append((REACTION_FRAMES[turn % len(REACTION_FRAMES)].format(x=x, s=subject), f"how {x} reacted"))
    for m in UNNAMED_GROUP.finditer(sentence):
        group = f"{m.group('who')} {m.group('noun')}"
        out.append((f"Which {group} does the source name?", f"the {group} by name"))
    return out


def when_question(sentence: str) -> str | None:
    """'When did Rutte welcome Germany's decision to ...?' for a clause with an object, else None."""
    c = parse_clause(sentence)
    if c is None or not c.object_phrase():
        return None
    return f"When {_ask(c.aux, c.short_subject(), c.adverbs, c.verb, c.object_phrase())}?"


def about_questions(sentence: str, names: list[str], subject: str) -> list[str]:
    """'What did <subject> say about <name>?' for the names this sentence mentions."""
    return [f"What did {subject} say about {n}?" for n in names if n in sentence and subject not in n]


def paraphrase(question: str) -> str | None:
    """The question with generic synonyms and country metonyms swapped in, or None if nothing applies."""
    out = question.replace("U.S. ", "American ")
    for country, (capital, _) in COUNTRIES.items():  # metonym only where a government acts: "Germany's decision"
        out = re.sub(rf"\b{re.escape(country)}['’]s\b", f"{capital}'s", out)
    for word, synonym in SYNONYMS.items():
        out = re.sub(rf"\b{re.escape(word)}\b", synonym, out)
    return out if out != question else None


PARTICIPLE = re.compile(r"(?:^|,\s+|\band\s+)(?P<verb>[a-z]+ing)\s+(?P<obj>(?:(?!\sand\s[a-z]+ing\b)[^,])+)")


def participle_questions(sentence: str) -> list[str]:
    """Questions about the participle clauses after the main verb ('..., advocating a 400% increase in
    air and missile defense to counter threats'): 'What did Rutte advocate?' and 'What did Rutte
    advocate in air and missile defense?'. The main clause alone would not reach these facts."""
    c = parse_clause(sentence)
    if c is None:
        return []
    who, out = c.short_subject(), []
    for past, obj in participles(c):
        base = base_form(past)
        out.append(f"What did {who} {base}?")
        head, _, tail = obj.partition(" in ")
        if head and tail:
            out.append(f"What did {who} {base} in {re.split(r' to ', tail)[0]}?")
        for purpose in re.findall(r" to ([a-z]+ .+)$", obj)[:1]:
            out.append(f"Why did {who} {base} {obj[:obj.index(' to ' + purpose)]}?")
    return out


NOT_PARTICIPLES = {"during", "including", "concerning", "regarding", "according", "following", "being"}  # -ing, no verb


def participles(c: Clause) -> list[tuple[str, str]]:
    """(past tense, object) of each participle clause after the main verb ('..., advocating a 400% increase in
    air and missile defense to counter threats' -> ('advocated', 'a 400% increase in air and missile defense to
    counter threats')), the object cut before a 'that' or 'if' clause."""
    return [(m.group("verb")[:-3] + "ed", re.split(r"\bthat |\bif ", m.group("obj").strip())[0].strip())
            for m in PARTICIPLE.finditer(c.rest) if m.group("verb") not in NOT_PARTICIPLES]


PARTNER = re.compile(r"\b(?:in|during|after) (?P<event>talks|discussions|negotiations|consultations|meetings|a meeting"
                     r"|a call|a phone call) with (?P<who>[^,.;]+)")


def partner_questions(sentence: str) -> list[str]:
    """Whom the subject met, for a sentence with '..., in talks with Ukrainian officials, ...': 'Who did Rutte
    hold talks with?' and 'With whom did Rutte hold talks?'. Without an answerable question of that form,
    'Who did Rutte hold talks with about ...?' reads like the 'When did Rutte ...?' date abstentions."""
    c = parse_clause(sentence)
    if c is None:
        return []
    who = c.short_subject()
    return [q for m in PARTNER.finditer(sentence) for event in [m.group("event")]
            for q in (f"Who did {who} hold {event} with?", f"With whom did {who} hold {event}?")]


FUNCTION_WORDS = set("""about above after again against also among another because been before being between both
could during each either every from further have having here into itself like more most much must only other
over same should since some such than that their them then there these they this those through under until upon
very were what when where which while whom whose will with within without would your concerning regarding
including according following""".split())
KEYWORD_FRAMES = ["What does the source say about {k}?", "What does the passage mention about {k}?",
                  "What is said about {k}?", "Tell me what the text says about {k}."]


def keyword_questions(sentences: list[str], per_sentence: int) -> list[list[str]]:
    """Per sentence, up to `per_sentence` 'What does the source say about <phrase>?' questions, for
    lower-case one- or two-word phrases found in no other sentence ('defense spending', 'deterrent'),
    two-word phrases first. They teach the model to find the sentence that holds a question's words."""
    def phrases(s: str) -> list[str]:
        words = re.findall(r"(?<![\w'’])[a-z][a-z-]{3,}\b", s)
        content = [w if w not in FUNCTION_WORDS and not w.endswith(("ed", "ly")) else None for w in words]
        nouns = [w if w and not w.endswith("ing") else None for w in content]  # 'ing' only as a head: 'defense spending'
        pairs = [f"{a} {b}" for a, b in zip(nouns, content[1:]) if a and b and f"{a} {b}" in s]
        return list(dict.fromkeys(pairs + [w for w in nouns if w and len(w) > 4]))

    found = [phrases(s) for s in sentences]
    counts = {p: sum(p in s.lower() for s in sentences) for ps in found for p in ps}
    out = []
    for i, ps in enumerate(found):
        unique = [p for p in ps if counts[p] == 1][:per_sentence]
        out.append([KEYWORD_FRAMES[(i + j) % len(KEYWORD_FRAMES)].format(k=p) for j, p in enumerate(unique)])
    return out


# Deverbal nouns after a possessive country ("Germany's decision to ..."), with the verb they stand for.
DEVERBAL = {"decision": "decided", "move": "moved", "plan": "planned", "proposal": "proposed", "offer": "offered",
            "pledge": "pledged", "promise": "promised", "refusal": "refused", "commitment": "committed",
            "request": "requested", "bid": "bid", "attempt": "attempted", "effort": "tried"}
STOP_WORDS = PREPOSITIONS | {"and", "or", "but", "that", "which", "who", "if", "as", "than", "by", "while", "because"}


DEMONYMS = {adjective: country for country, (_, adjective) in COUNTRIES.items()}
COUNTRY_MENTION = re.compile(  # a country or demonym, possibly possessive, and the clause after it
    rf"(?<![\w.])(?P<name>{'|'.join(re.escape(n) for n in sorted([*COUNTRIES, *DEMONYMS], key=len, reverse=True))})"
    r"(?P<pos>['’]s)?(?!\w)(?=\s+(?P<rest>[^,;]+))")
UNNAMED_GROUP = re.compile(  # a demonym or organisation before a group noun: "Ukrainian officials", "NATO members"
    rf"(?<![\w.])(?P<who>{'|'.join(re.escape(n) for n in sorted([*DEMONYMS, *ORGANISATIONS], key=len, reverse=True))})"
    rf"\s+(?P<noun>{'|'.join(GROUP_NOUNS)})\b")


def _noun_phrase(text: str, max_words: int, inner: frozenset = frozenset()) -> str:
    """The words opening `text` up to a preposition, conjunction or punctuation mark (those in `inner`
    may continue it), without a trailing `inner` word."""
    words = []
    for w in re.findall(r"[A-Za-z][\w'’-]*|[^\sA-Za-z]", text):
        if not w[0].isalpha() or (w.lower() in STOP_WORDS - inner) or len(words) == max_words:
            break
        words.append(w)
    while words and words[-1] in inner:
        words.pop()
    return " ".join(words)


def _factoid(i: int, wh: str, np: str) -> str:
    verb = "are" if re.search(r"[^s]s$", np) else "is"
    return [f"{wh} {np} does the source mention?", f"{wh} {np} {verb} mentioned in the text?"][i % 2]


def factoid_questions(sentence: str, number: re.Pattern) -> list[str]:
    """Short fronted questions whose answer is a country or a number in the sentence, the forms people ask
    ('Which country decided to provide Ukraine with two Patriot systems?', 'Which country's officials does
    the source mention?', 'How many additional Patriot missile systems does the source mention?').

    They are the answerable twins of the abstention questions about countries and amounts, so a model does
    not learn that a short question about a country or a number is one the source cannot answer.
    """
    return list(dict.fromkeys(q for q, _, _, _ in factoid_details(sentence, number)))


def factoid_details(sentence: str, number: re.Pattern) -> list[tuple[str, int, int, str]]:
    """`factoid_questions` with where each answer stands: (question, start, end, kind), `kind` "country"
    or "number", start/end the answer's span in `sentence` (a possessive country with its "'s")."""
    s = sentence.rstrip(".")
    out = []
    for i, m in enumerate(COUNTRY_MENTION.finditer(s)):
        rest, possessive = m.group("rest"), bool(m.group("pos"))
        if not (possessive or m.group("name") in DEMONYMS or m.group("name") == "U.S."):
            continue  # a bare country ("provide Ukraine with") is not a modifier to ask about
        head = rest.split()[0]
        if possessive and head in DEVERBAL and rest.split()[1:2] == ["to"]:
            tail = re.split(r"\s(?:stating|saying|adding|which|while)\b", rest)[0]
            out.append((f"Which country {DEVERBAL[head]} {tail.split(' ', 1)[1]}?", m.start(), m.end(), "country"))
        np = _noun_phrase(rest, 3)
        if np and np[0].islower():
            out.append((_factoid(i, "Which country's", np), m.start(), m.end(), "country"))
    for i, m in enumerate(number.finditer(s)):
        np = _noun_phrase(s[m.end():], 6, frozenset({"in", "of", "and"}))
        if np and np[0].islower():
            wh = "What percentage" if re.search(r"%|percent", m.group(0)) else "How many"
            out.append((_factoid(i, wh, np), m.start(), m.end(), "number"))
    return out


def without_detail(sentence: str, start: int, end: int, kind: str) -> str:
    """The sentence with the answer of a factoid question taken out: a possessive country becomes "the"
    ("Germany's decision" -> "the decision"), a country used as a modifier and a number are dropped
    ("Ukrainian officials" -> "officials", "two additional" -> "additional", "a 400% increase" -> "an
    increase")."""
    possessive = kind == "country" and re.match(r"['’]s", sentence[end - 2:end]) is not None
    before, after = sentence[:start], sentence[end:].lstrip()
    if possessive:
        return before + "the " + after
    article = re.search(r"\b([Aa]n?) $", before)
    if article:  # "a 400% increase" -> "an increase"
        a = ("an" if after[:1].lower() in "aeiou" else "a")
        before = before[:article.start(1)] + (a.capitalize() if article.group(1)[0].isupper() else a) + " "
    return before + after


def _mention(name: str) -> re.Pattern:
    return re.compile(rf"(?<![\w.]){re.escape(name)}(?!\w)")  # not \b: "U.S." ends in "."


def country_forms(text: str) -> set[str]:
    """The countries of COUNTRIES that `text` names, by name, capital or demonym."""
    return {c for c, forms in COUNTRIES.items() if any(_mention(f).search(text) for f in (c, *forms))}


def swap_country(question: str, present: set[str], absent: str) -> str | None:
    """The question with its first mention of a present country (its name, capital or demonym) replaced by
    the same form of `absent`: 'What did Rutte say about China?' -> '... about Japan?'; None if none. An
    abbreviated name used as a modifier takes the demonym: 'U.S. weapons' -> 'Polish weapons'."""
    found = [(m.start(), m.end(), k) for c in present for k, form in enumerate((c, *COUNTRIES[c]))
             for m in [_mention(form).search(question)] if m]
    if not found:
        return None
    start, end, k = min(found)
    head = question[:start]
    article = re.search(r"\b[Tt]he $", head) if k == 0 else None
    if k == 0 and "." in question[start:end] and re.match(r" [a-z]", question[end:]):
        if article:  # "the U.S. weapons" (a modifier) or "the U.S. decided" (a noun)? No twin rather than a wrong one
            return None
        k = 2
    if article and absent not in ARTICLE_NAMES:  # "the United States" -> "Poland", not "the Poland"
        head = head[:article.start()]
    return head + (absent, *COUNTRIES[absent])[k] + question[end:]


def swap_person(question: str, surname: str, person: str) -> str | None:
    """The question with the named person (a full name with its title, or the surname alone) replaced by
    another person: 'What did Rutte say about China?' -> 'What did Macron say about China?'; None if absent."""
    m = re.search(rf"(?:[A-Z][\w'’.-]*\s+)*{re.escape(surname)}\b", question)
    if not m:
        return None
    words = m.group(0).split()
    while len(words) > 1 and (words[0].lower() in AUX | QUESTION_WORDS):  # "Did Rutte": "Did" is no title
        words.pop(0)
    start = m.end() - len(" ".join(words))
    return question[:start] + (person if len(words) > 1 else person.split()[-1]) + question[m.end():]


def referents(source: str) -> dict[str, list[str]]:
    """Other ways a question may name each titled person of the passage, by surname: 'NATO Secretary General
    Mark Rutte' -> {'Rutte': ["NATO's chief", "the alliance's leader", 'the NATO Secretary General', ...]}.
    Built from the passage's own title appositions, HEADS and the ORGANISATIONS gazetteer."""
    out: dict[str, list[str]] = {}
    for org, title, name in appositions(source):
        forms = [f"the {title}", name]
        if org:
            nick = ORGANISATIONS.get(org)
            owner = DEMONYMS.get(org, org)  # "German Chancellor" -> "Germany's chief"
            forms = [f"{owner}'s {HEADS[0]}", f"the {org} {title}", *([f"the {nick}'s {HEADS[1]}"] if nick else []),
                     f"{owner}'s {title.lower()}", f"{owner}'s {HEADS[2]}", *([f"the {nick}'s {HEADS[0]}"] if nick else []),
                     *forms]
        out.setdefault(name.split()[-1], forms)
    return out


def refer(question: str, surname: str, referent: str) -> str | None:
    """The question with its bare surname ('What did Rutte welcome?', not 'Mark Rutte') replaced by `referent`
    ("What did NATO's chief welcome?"), and each organisation of ORGANISATIONS used as a modifier ('NATO
    members') by its noun ('alliance members'); None when neither applies. An empty `surname` swaps
    organisations only."""
    out = question
    for org, noun in ORGANISATIONS.items():  # first, so that a referent's own "NATO's" stays
        out = re.sub(rf"(?<![\w'’]){re.escape(org)} (?={MODIFIED})", f"{noun} ", out)  # "NATO members" -> "alliance members"
        out = re.sub(rf"(?<![\w'’]){re.escape(org)}(?=['’]s\b| [a-z]|\?)", f"the {noun}", out)  # "NATO's", "NATO respond"
        out = re.sub(rf"(?<=\bto ){re.escape(org)}\b(?!['’])", f"the {noun}", out)  # "path to NATO" -> "to the alliance"
    for m in re.finditer(rf"\b{re.escape(surname)}\b(?!['’])", out) if surname else []:
        before = out[:m.start()].split()[-1:]
        if not before or not before[0][0].isupper() or before[0].lower() in AUX | QUESTION_WORDS:  # not "Mark Rutte"
            out = out[:m.start()] + referent + out[m.end():]
            break
    out = out[0].upper() + out[1:]
    return out if out != question else None



# Words for the direction of a change or a stance inside a clause, and their opposites: a yes/no question with
# one of them turned asks about the opposite of what the passage says. A generic list.
REVERSALS = {"ramp up": "cut", "ramping up": "cutting", "increase": "cut", "increasing": "cutting", "boost": "cut",
             "raise": "lower", "expand": "shrink", "strengthen": "weaken", "bolster": "weaken", "fails to": "agrees to",
             "refuses to": "agrees to", "unity": "division"}
NEXT_NUMBER = {"one": "three", "two": "three", "three": "five", "four": "six", "five": "seven", "six": "eight",
               "seven": "nine", "eight": "ten", "nine": "twelve", "ten": "twenty", "dozen": "hundred"}
SAYS_FRAMES = ["Does the passage say that {s}?", "Is it true that {s}?", "According to the source, {s}. Is that right?"]


def wrong_number(number: str) -> str | None:
    """Another number of the same form: '400%' -> '40%', '18' -> '180', 'two' -> 'three'; None if not a number."""
    word = number.lower()
    if word in NEXT_NUMBER:
        out = NEXT_NUMBER[word]
        return out.capitalize() if number[0].isupper() else out
    m = re.fullmatch(r"(\d[\d,]*)(.*)", number)
    if not m or not m.group(1).replace(",", "").isdigit():
        return None
    value = int(m.group(1).replace(",", ""))
    return f"{value // 10 if value >= 20 and value % 10 == 0 else value * 10}{m.group(2)}"


def reversed_detail(text: str) -> str | None:
    """`text` with its first word of REVERSALS turned into the opposite ('ramp up defense spending' -> 'cut
    defense spending', 'a 400% increase' -> 'a 400% cut'); None if it has none."""
    found = [(m.start(), m.end(), REVERSALS[w]) for w in REVERSALS for m in [re.search(rf"\b{re.escape(w)}\b", text)] if m]
    if not found:
        return None
    start, end, opposite = min(found)
    return text[:start] + opposite + text[end:]


def claims(sentence: str) -> list[tuple[str, str]]:
    """(yes/no question, statement) for what a sentence's main clause and its participle clauses say:
    ('Did Rutte underline the necessity for NATO countries to significantly ramp up defense spending?',
    'Rutte underlined the necessity ...'), ('Did Rutte advocate a 400% increase in air and missile defense?',
    'Rutte advocated a 400% increase in air and missile defense')."""
    c = parse_clause(sentence)
    if c is None:
        return []
    who, obj, out = c.short_subject(), c.object_phrase(), []
    if obj:
        out.append((yes_no_question(c, obj), " ".join(w for w in (who, c.aux, c.adverbs, c.verb, obj) if w)))
    for past, obj in participles(c):
        detail = re.split(r" to counter\b| to sustain\b", obj)[0].strip()  # the claim, without its purpose
        if past != "stated" and detail:
            out.append((f"Did {who} {base_form(past)} {detail}?", f"{who} {past} {detail}"))
    return out


PREMISE_DETAILS = ("number", "direction", "country")  # the details premise_questions may make wrong


def premise_questions(sentence: str, present: set[str], number: re.Pattern, n: int,
                      details: Sequence[str] = PREMISE_DETAILS) -> list[tuple[str, bool]]:
    """Up to `n` yes/no questions about a sentence with one detail made wrong, each beside a true one, as
    (question, true?). The `details` that may be made wrong: "number" ('a 400% increase' -> 'a 40% increase'),
    "direction" (a word of REVERSALS, 'ramp up' -> 'cut') and "country" (swapped for another one the passage
    names, `present`). Asked either as 'Did Rutte ...?' or as 'Does the passage say that Rutte ...?'
    (SAYS_FRAMES, in turns), the true one in the other form, so that neither form nor topic tells Yes from No:
    only the detail does. The passage answers the wrong ones 'No.' and the true ones 'Yes.'."""
    def wrong(text: str) -> dict[str, str | None]:
        m = number.search(text)
        other_number = m and wrong_number(m.group(0))
        others = sorted(present - country_forms(text) - {"United States"})
        changed = {"number": text[:m.start()] + other_number + text[m.end():] if other_number else None,
                   "direction": reversed_detail(text),
                   "country": swap_country(text, present, others[len(text) % len(others)]) if others else None}
        return {kind: changed[kind] for kind in PREMISE_DETAILS if kind in details}

    out: list[tuple[str, bool]] = []
    for asked, statement in claims(sentence) if n else []:
        twins = [(q, s) for q, s in zip(wrong(asked).values(), wrong(statement).values()) if q and s]
        for k, (false_q, false_s) in enumerate(twins):
            if len(out) >= 2 * n:
                break
            says = SAYS_FRAMES[(len(out) // 2) % len(SAYS_FRAMES)]
            true_form, false_form = (says.format(s=statement), false_q) if k % 2 == 0 else (asked, says.format(s=false_s))
            out += [(false_form, False), (true_form, True)]
    return list(dict(out).items())
