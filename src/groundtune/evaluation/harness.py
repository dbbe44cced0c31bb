"""The evaluation harness (`groundtune eval`, and the last step of `groundtune run`).

Entry points: `evaluate_model(model_dir, out_dir, ...)` and `evaluate_run(run_folder, cfg)`. It
generates answers to each question set with the tuned model (greedy, batched, through
`groundtune.infer.Answerer`), optionally with the untuned base model given the very same prompt, scores
every answer (groundtune.evaluation.score), aggregates per set and writes report.json/md/html with
plots (groundtune.evaluation.report).

Question sets: `train` (the user's own pairs, from the run folder's dataset/) and JSONL files with rows
`{"id", "question", "answer", "answerable": true, "key_facts": [["two", "2"], ...]}`; each key fact is a
list of acceptable alternatives, present when any of them occurs in the answer (case-insensitive,
whitespace and number words normalised: "two" = "2", "400 percent" = "400%").
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from groundtune.config import DataConfig, EvalConfig, ModelConfig, load_run_config
from groundtune.errors import GroundtuneError
from groundtune.evaluation.text import numbers

METRICS = ("key_fact_accuracy", "abstention_rate", "refusal_rate", "unsupported_rate", "mean_consistency",
           "token_recall", "token_f1", "rougeL", "abstention_auroc", "yes_no_accuracy")
"""Aggregate metrics per question set, in report order."""
EXCLUDED_FROM_AUROC = "train"
"""The user's own (trained) questions: answerable, and too easy to count as negatives in `abstention_auroc`."""


@dataclass
class Question:
    set: str
    id: str
    question: str
    reference: str
    answerable: bool = True
    key_facts: list[list[str]] = field(default_factory=list)


# --------------------------------------------------------------------------------------------------
# Question sets


def read_question_set(path: str | Path) -> list[Question]:
    """A JSONL question set; every problem names the file and line."""
    from groundtune.readers import json_objects

    name, rows, seen = Path(path).stem, [], set()
    for lineno, rec in json_objects(path):
        rows.append(_question(rec, name, lineno, path))
        if rows[-1].id in seen:
            raise GroundtuneError(f"duplicate id {rows[-1].id!r}", path, lineno)
        seen.add(rows[-1].id)
    if not rows:
        raise GroundtuneError("no questions", path)
    return rows


def _question(rec: dict, name: str, lineno: int, path) -> Question:
    for key in ("question", "answer"):
        if not isinstance(rec.get(key), str) or not rec[key].strip():
            raise GroundtuneError(f"field {key!r} must be a non-empty string", path, lineno)
    answerable = rec.get("answerable", True)
    if not isinstance(answerable, bool):
        raise GroundtuneError("field 'answerable' must be true or false", path, lineno)
    facts = rec.get("key_facts", [])
    if not (isinstance(facts, list) and all(isinstance(f, list) and f and all(isinstance(a, str) for a in f)
                                            for f in facts)):
        raise GroundtuneError("field 'key_facts' must be a list of lists of alternative strings", path, lineno)
    return Question(name, str(rec.get("id", f"{name}-{lineno}")), rec["question"].strip(), rec["answer"].strip(),
                    answerable, facts)


def train_questions(run_folder: Path) -> list[Question]:
    """The user's own pairs of a run (dataset/ rows of kind `user`, each question once)."""
    import datasets

    ds = datasets.load_from_disk(str(run_folder / "dataset"))["train"]
    out, seen = [], set()
    for row in ds:
        if row["kind"] == "user" and row["question"] not in seen:
            seen.add(row["question"])
            out.append(Question("train", f"train-{len(out) + 1}", row["question"], row["answer"]))
    return out


def run_source(run_folder: Path) -> str | None:
    """The passage a run was trained on (None when its dataset holds several)."""
    import datasets

    sources = set(datasets.load_from_disk(str(run_folder / "dataset"))["train"]["source"])
    return sources.pop() if len(sources) == 1 else None


def load_sets(names: list[str], run_folder: Path | None) -> dict[str, list[Question]]:
    sets: dict[str, list[Question]] = {}
    for name in names:
        if name == "train":
            if run_folder is None:
                raise GroundtuneError("question set 'train' needs a groundtune run folder (with dataset/)")
            questions = train_questions(run_folder)
        else:
            questions = read_question_set(name)
        key = questions[0].set
        if key in sets:
            raise GroundtuneError(f"two question sets are both named {key!r}", name)
        sets[key] = questions
    return sets


# --------------------------------------------------------------------------------------------------
# Key facts and aggregates


def normalise(text: str) -> str:
    """Lower case, single spaces, curly quotes straightened, every number written as its value ("two" -> "2")."""
    out, pos = [], 0
    for n in numbers(text):
        out += [text[pos:n.start], f"{n.value:g}" + ("%" if n.percent else "")]
        pos = n.end
    out.append(text[pos:])
    return " ".join("".join(out).replace("’", "'").lower().split())


def key_fact_hit(answer: str, key_facts: list[list[str]]) -> bool | None:
    """All key facts present (any alternative of each); None when the question has none."""
    if not key_facts:
        return None
    text = normalise(answer)
    return all(any(normalise(alt) in text for alt in alternatives) for alternatives in key_facts)


YES_NO = re.compile(r"^\W*(yes|no)\b", re.IGNORECASE)


def yes_no_agrees(answer: str, reference: str) -> bool | None:
    """For a reference that opens with "Yes" or "No" (a yes/no question): whether the answer opens with the
    same word. An answer that opens with the other word, or with neither, does not agree: key facts alone
    miss a "Yes." to a false premise ("Did Rutte call for a 40% increase?" -> "Yes. ... a 400% increase")."""
    ref = YES_NO.match(reference)
    if not ref:
        return None
    got = YES_NO.match(answer)
    return bool(got) and got.group(1).lower() == ref.group(1).lower()


def _mean(values) -> float | None:
    values = [float(v) for v in values if v is not None]
    return round(sum(values) / len(values), 4) if values else None


PROPORTIONS = ("key_fact_accuracy", "abstention_rate", "refusal_rate", "unsupported_rate", "yes_no_accuracy")
"""The METRICS that are shares of questions; the report gives each a 95% interval (`intervals`)."""


def outcomes(questions: list[Question], results: list[dict]) -> dict[str, list[bool]]:
    """Per PROPORTIONS metric, the yes/no outcome of every question it counts (questions it does not apply
    to left out): the metric is the share of True."""
    answerable = [r for q, r in zip(questions, results) if q.answerable]
    unanswerable = [r for q, r in zip(questions, results) if not q.answerable]
    kept = lambda values: [bool(v) for v in values if v is not None]  # noqa: E731
    return {
        "key_fact_accuracy": kept(r["key_fact_hit"] for r in answerable),
        "abstention_rate": kept(r["abstained"] for r in unanswerable),
        "refusal_rate": kept(r["abstained"] for r in answerable),
        "unsupported_rate": [bool(r["flags"]["unsupported_numbers"] or r["flags"]["unsupported_names"]) for r in results],
        "yes_no_accuracy": kept(r.get("yes_no") for r in answerable),
    }


def aggregate(questions: list[Question], results: list[dict]) -> dict:
    """The METRICS of one set for one model (None where a metric does not apply to the set)."""
    answerable = [r for q, r in zip(questions, results) if q.answerable]
    share = {m: _mean(v) for m, v in outcomes(questions, results).items()}
    return {
        "key_fact_accuracy": share["key_fact_accuracy"],
        "abstention_rate": share["abstention_rate"],
        "refusal_rate": share["refusal_rate"],
        "unsupported_rate": share["unsupported_rate"],
        "mean_consistency": _mean(r["consistency"] for r in results),
        "token_recall": _mean(r["signals"].get("token_recall") for r in answerable),
        "token_f1": _mean(r["signals"].get("token_f1") for r in answerable),
        "rougeL": _mean(r["signals"].get("rougeL") for r in answerable),
        "abstention_auroc": None,  # needs the other sets' answerable questions: see abstention_auroc
        "yes_no_accuracy": share["yes_no_accuracy"],
    }


def wilson(k: int, n: int, z: float = 1.96) -> list[float] | None:
    """The Wilson score interval of k successes in n trials (95% for z = 1.96); None for n = 0. Unlike
    the normal approximation it stays inside [0, 1] and is sound for the small n of a question set."""
    if n == 0:
        return None
    p, z2 = k / n, z * z
    centre, half = (p + z2 / (2 * n)) / (1 + z2 / n), z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return [round(max(0.0, centre - half), 4), round(min(1.0, centre + half), 4)]


def intervals(questions: list[Question], results: list[dict]) -> dict[str, dict | None]:
    """{"low", "high", "n"}: 95% Wilson intervals of the PROPORTIONS metrics of one set for one model, over the
    n questions each counts; how far a share measured on these few questions could move on others like them
    (not the spread over training seeds, which adds to it). None where a metric counts no question."""
    out = {}
    for metric, values in outcomes(questions, results).items():
        bounds = wilson(sum(values), len(values))
        out[metric] = None if bounds is None else {"low": bounds[0], "high": bounds[1], "n": len(values)}
    return out


def abstention_auroc(questions: list[Question], results: list[dict], set_name: str) -> float | None:
    """How well the model's log P(abstention opening) ranks `set_name`'s unanswerable questions above the
    answerable questions of every set but the training pairs: ROC AUC, 0.5 = no better than chance.
    Threshold-free, so it compares recipes without the abstention/refusal trade-off of one operating point."""
    from groundtune.evaluation.calibrate import auc

    pos = [r["abstain_logprob"] for q, r in zip(questions, results) if q.set == set_name and not q.answerable]
    neg = [r["abstain_logprob"] for q, r in zip(questions, results) if q.set != EXCLUDED_FROM_AUROC and q.answerable]
    if not pos or not neg:
        return None
    return round(auc(pos + neg, [1] * len(pos) + [0] * len(neg)), 4)


def metrics_by_set(set_names, questions: list[Question], results: list[dict]) -> dict[str, dict]:
    """The METRICS of each named set for one model (`aggregate` of its questions), with its abstention AUROC,
    which ranks against the answerable questions of the other sets too (`abstention_auroc`)."""
    out = {}
    for name in set_names:
        rows = [(q, r) for q, r in zip(questions, results) if q.set == name]
        out[name] = aggregate([q for q, _ in rows], [r for _, r in rows])
        out[name]["abstention_auroc"] = abstention_auroc(questions, results, name)
    return out


def question_half(question_id: str) -> int:
    """0 or 1: a question's half, from sha256 of its id (stable, independent of the file order); the scripts
    that check whether a setting chosen on some questions holds on others cut the sets with it."""
    return int(hashlib.sha256(question_id.encode()).hexdigest(), 16) % 2


def abstention_opening(answer: str) -> str:
    """The words every abstention starts with: 'The source does not say.' -> 'The source does not say'."""
    return re.split(r"[.;:,!?]", answer.strip())[0].strip() or answer.strip()


# --------------------------------------------------------------------------------------------------
# Models and answers


def saved_source(model_dir: Path) -> str | None:
    """The passage in a model folder's source_check.json (a published groundtune model, downloaded), if any."""
    from groundtune.source_check import SourceCheck

    check = SourceCheck.find(model_dir)
    return check.source if check else None


@dataclass
class Target:
    """What to evaluate: the tuned model folder, its passage, and how to build the base model's prompt."""

    model_dir: Path
    source: str
    run_folder: Path | None
    base: ModelConfig | None
    data: DataConfig
    system_for_tuned: str | None


def resolve_target(model_dir: str | Path, base_model: str | None, source_path: str | None,
                   device: str) -> Target:
    """Read what a run folder knows (config.yaml, manifest.json, dataset/); fill the rest from the flags."""
    from groundtune.chat import system_text
    from groundtune.infer import check_model_dir
    from groundtune.readers import read_source
    from groundtune.runs import is_run_folder

    model_dir = check_model_dir(model_dir)
    is_run = is_run_folder(model_dir)
    cfg = load_run_config(model_dir / "config.yaml") if is_run else None
    data = cfg.data if cfg else DataConfig()
    source = read_source(source_path) if source_path else run_source(model_dir) if is_run else saved_source(model_dir)
    if source is None:
        raise GroundtuneError("no source passage: pass --source PASSAGE.txt (needed for a model folder that is "
                              "not a single-passage groundtune run and has no source_check.json)", model_dir)
    base = None
    if base_model:
        base = ModelConfig(base_model=base_model, device=device)
    elif cfg is not None:
        manifest = json.loads((model_dir / "manifest.json").read_text()) if (model_dir / "manifest.json").is_file() else {}
        base = dataclasses.replace(cfg.model, base_model=manifest.get("base_model", cfg.model.base_model),
                                   device=device)
    # a run folder's chat template inserts the passage itself; any other model gets it as a system message
    system = None if is_run else system_text(source, data)
    return Target(model_dir, source, model_dir if is_run else None, base, data, system)


def answers_and_abstention(answerer, target: Target, questions: list[str], cfg: EvalConfig, timer,
                           model: str) -> tuple[list[str], list[float]]:
    """One model's greedy answers, and its log-probability of opening each answer with the abstention."""
    with timer(f"generate_{model}"):
        answers = answerer.answer(questions, batch_size=cfg.batch_size, draft_budget=cfg.draft_budget, progress=True)
    with timer(f"abstain_logprob_{model}"):
        return answers, answerer.continuation_logprob(questions, abstention_opening(target.data.abstain_answer))


def source_check(target: Target):
    """The source check of the evaluated model: the folder's own (`SourceCheck.find`: the passage, the user's
    answers, the abstention answer) with the passage evaluated against; else (a run on several passages, evaluated
    on one with --source, or a plain model folder) that passage and the run's user answers, if any."""
    from groundtune.source_check import SourceCheck

    check = SourceCheck.find(target.model_dir)
    if check is not None:
        return dataclasses.replace(check, source=target.source)
    user = tuple(q.reference for q in train_questions(target.run_folder)) if target.run_folder else ()
    return SourceCheck(target.source, user, target.data.abstain_answer)


def answer_tuned(target: Target, questions: list[str], cfg: EvalConfig, device: str,
                 timer) -> tuple[list[str], list[float]]:
    from groundtune.infer import Answerer

    with timer("load_tuned"):
        answerer = Answerer.from_dir(target.model_dir, device=device, max_new_tokens=cfg.max_new_tokens,
                                     system=target.system_for_tuned)
    return answers_and_abstention(answerer, target, questions, cfg, timer, "tuned")


def answer_base(target: Target, questions: list[str], cfg: EvalConfig, timer) -> tuple[list[str], list[float]]:
    """The untuned base model, given the same system prompt (with the passage) the tuned model gets."""
    from groundtune.chat import system_text
    from groundtune.infer import Answerer
    from groundtune.model import load_base

    if target.base is None:
        raise GroundtuneError("--compare-base needs --base-model for a model folder that is not a groundtune run",
                              target.model_dir)
    with timer("load_base"):
        _, tokenizer, model = load_base(target.base)
        answerer = Answerer(model, tokenizer, system=system_text(target.source, target.data),
                            max_new_tokens=cfg.max_new_tokens)
    return answers_and_abstention(answerer, target, questions, cfg, timer, "base")


def score_answers(scorer, questions: list[Question], answers: list[str], source: str,
                  abstain_logprobs: list[float]) -> list[dict]:
    from groundtune.evaluation.score import Row

    rows = [Row(q.id, a, q.reference, source, q.question) for q, a in zip(questions, answers)]
    out = []
    for q, a, r, lp in zip(questions, answers, scorer.score(rows), abstain_logprobs):
        out.append({"answer": a, "consistency": r["consistency"], "signals": r["signals"], "flags": r["flags"],
                    "key_fact_hit": key_fact_hit(a, q.key_facts) if q.answerable else None,
                    "yes_no": yes_no_agrees(a, q.reference) if q.answerable else None,
                    "abstained": r["abstained"], "abstain_logprob": round(lp, 4)})
    return out


def score_checked(scorer, check, questions: list[Question], tuned: list[dict]) -> list[dict]:
    """The tuned answers' scores (`score_answers` rows) after the source check `check`, given each question: the
    answers it withholds are scored again as its abstention (same abstain_logprob); the others keep their rows."""
    checked = [check.apply(r["answer"], q.question) for q, r in zip(questions, tuned)]
    withheld = [i for i, (c, r) in enumerate(zip(checked, tuned)) if c != r["answer"]]
    out = list(tuned)
    if withheld:
        rescored = score_answers(scorer, [questions[i] for i in withheld], [checked[i] for i in withheld],
                                 check.source, [tuned[i]["abstain_logprob"] for i in withheld])
        for i, row in zip(withheld, rescored):
            out[i] = row
    return out


# --------------------------------------------------------------------------------------------------
# Entry points


def evaluate_model(model_dir: str | Path, out_dir: str | Path, cfg: EvalConfig | None = None,
                   compare_base: bool | None = None, base_model: str | None = None, source_path: str | None = None,
                   device: str = "auto", question_sets: list[str] | None = None) -> dict:
    """Answer every question set, score, aggregate and write the report to `out_dir`; returns report.json's dict."""
    from groundtune.evaluation.report import build_report, write_report
    from groundtune.evaluation.score import Scorer
    from groundtune.runs import Timer

    from groundtune.infer import check_model_dir

    timer = Timer()
    t0 = time.perf_counter()
    saved_cfg = Path(check_model_dir(model_dir)) / "config.yaml"
    saved = load_run_config(saved_cfg) if saved_cfg.is_file() else None
    cfg = cfg or (saved.eval if saved else EvalConfig())
    if device == "auto" and saved is not None:
        device = saved.model.device  # generate where the run was configured to
    target = resolve_target(model_dir, base_model, source_path, device)
    compare_base = cfg.compare_base if compare_base is None else compare_base
    sets = load_sets(question_sets or cfg.question_sets, target.run_folder)
    questions = [q for qs in sets.values() for q in qs]
    texts = [q.question for q in questions]
    answers = {"tuned": answer_tuned(target, texts, cfg, device, timer)}
    if compare_base:
        answers["base"] = answer_base(target, texts, cfg, timer)
    with timer("score"):
        scorer = Scorer(nli_model=cfg.nli_model)
        scored = {name: score_answers(scorer, questions, a, target.source, lp) for name, (a, lp) in answers.items()}
        if cfg.source_check:
            scored["checked"] = score_checked(scorer, source_check(target), questions, scored["tuned"])
    timer.times["total"] = round(time.perf_counter() - t0, 2)
    report = build_report(target, sets, questions, scored, timer.times)
    write_report(report, Path(out_dir))
    return report


def evaluate_run(run_folder: str | Path, cfg: EvalConfig) -> dict:
    """`groundtune run`'s last step: evaluate the run into `<run>/eval/` and print the headline table."""
    from groundtune.evaluation.report import headline

    run_folder = Path(run_folder)
    report = evaluate_model(run_folder, run_folder / "eval", cfg=cfg)
    print(headline(report), flush=True)
    return report
