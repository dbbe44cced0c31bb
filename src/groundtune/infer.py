"""Inference: answer questions with a run folder (or any chat model folder), batched or streamed.

`Answerer` holds a model and tokenizer. `answer` decodes many questions greedily in batches that
start from the cached passage prefix; `stream` decodes one answer with n-gram lookup drafting and
writes it as it comes (see groundtune.generate: both give plain greedy output, faster). `ask` is the
command-line front end: one question, or an interactive session.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable

import torch

from groundtune.chat import to_messages
from groundtune.config import EvalConfig
from groundtune.errors import GroundtuneError
from groundtune.generate import (PrefixCache, SequenceBias, batch_greedy, left_padded, lookup_greedy, shared_prefix,
                                 start_cache)
from groundtune.model import prefer_gqa_attention


def check_model_dir(path: str | Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise GroundtuneError("model folder not found", path)
    if not (path / "config.json").is_file():
        raise GroundtuneError("not a model folder (no config.json); pass a run folder such as outputs/latest", path)
    if not any(path.glob("*.safetensors")):
        raise GroundtuneError("no safetensors weights in the model folder", path)
    return path


def known_answers(path: str | Path) -> list[str]:
    """Answers in a run folder's dataset: extra text for lookup drafting (never changes the output)."""
    from groundtune.runs import is_run_folder

    if not is_run_folder(path):
        return []
    import datasets

    return list(dict.fromkeys(datasets.load_from_disk(str(Path(path) / "dataset"))["train"]["answer"]))


def unapplied_generation(generation_config) -> list[str]:
    """The settings of a model's generation config that change what `pipeline` answers and that groundtune's
    greedy decoding does not apply (sampling, beams, penalties...), as 'name=value'. A setting at its neutral
    value (None, or 1 for a factor such as repetition_penalty, 0 for a count) is no change."""
    from groundtune.save import UNMEASURED_GENERATION

    factors = {"repetition_penalty", "encoder_repetition_penalty", "num_beams", "num_beam_groups", "typical_p"}
    skip = {"sequence_bias", "length_penalty"}  # the first is applied (SequenceBias), only beams read the second
    out = ["do_sample=True"] if getattr(generation_config, "do_sample", False) else []
    for name in UNMEASURED_GENERATION:
        value = getattr(generation_config, name, None)
        if name not in skip and value not in (None, []) and value != (1 if name in factors else 0):
            out.append(f"{name}={value!r}")
    return out


class Answerer:
    """Greedy answers from a chat model, batched (`answer`) or streamed (`stream`)."""

    def __init__(self, model, tokenizer, system: str | None = None, max_new_tokens: int = 128,
                 corpus: list[str] = ()):
        self.model = model.eval()
        prefer_gqa_attention(model.device.type)
        self.tokenizer = tokenizer
        self.system = system
        self.max_new_tokens = max_new_tokens
        self.corpus = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in corpus]
        self._prefix: PrefixCache | None = None
        self.bias = SequenceBias.of(model.generation_config)  # as pipeline applies it

    @classmethod
    def from_dir(cls, path: str | Path, device: str = "auto", **kwargs) -> "Answerer":
        from groundtune.config import ModelConfig
        from groundtune.model import load_model, load_tokenizer

        path = check_model_dir(path)
        tokenizer = load_tokenizer(str(path))
        model = load_model(str(path), ModelConfig(device=device))
        unapplied = unapplied_generation(model.generation_config)
        if unapplied:
            print(f"[groundtune] note: {path}/generation_config.json sets {', '.join(unapplied)}; groundtune decodes "
                  "greedily without them, so pipeline's answers can differ from these", flush=True)
        kwargs.setdefault("corpus", known_answers(path))
        return cls(model, tokenizer, **kwargs)

    def prompt_ids(self, question: str) -> list[int]:
        messages = to_messages(question, None, self.system)
        text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def prefix(self) -> PrefixCache:
        """The cache of the prompt part every question shares (chat markup, system prompt, passage)."""
        if self._prefix is None:
            self._prefix = PrefixCache(self.model, shared_prefix([self.prompt_ids("A"), self.prompt_ids("B")]))
        return self._prefix

    def _decode(self, tokens: list[int]) -> str:
        return self.tokenizer.decode(tokens, skip_special_tokens=True).strip()

    def answer(self, questions: list[str], batch_size: int = EvalConfig.batch_size,
               draft_budget: int = EvalConfig.draft_budget, progress: bool = False) -> list[str]:
        """Answers in input order. Prompts are sorted by length so each batch pads little; `draft_budget`
        (see batch_greedy) lets the last answers of a batch copy passage phrases several tokens per step."""
        if not questions:
            return []
        prompts = [self.prompt_ids(q) for q in questions]
        prefix = self.prefix()
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        answers = [""] * len(questions)
        bar = _progress(len(questions), "generating") if progress else None
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            outs = batch_greedy(self.model, [prompts[i] for i in idx], self.max_new_tokens,
                                self.tokenizer.eos_token_id, self.tokenizer.pad_token_id, prefix,
                                self.corpus, draft_budget, on_done=None if bar is None else lambda _: bar.update(1),
                                bias=self.bias)
            for i, tokens in zip(idx, outs):
                answers[i] = self._decode(tokens)
        if bar is not None:
            bar.close()
        return answers

    @torch.inference_mode()
    def continuation_logprob(self, questions: list[str], text: str, batch_size: int = 16) -> list[float]:
        """log P(answer starts with `text` | question) per question, teacher-forced, after the cached
        passage prefix. Rows are right-aligned, so only the last len(text) + 1 positions need logits."""
        cont = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        prefix = self.prefix()
        p = len(prefix.ids)
        out: list[float] = []
        for start in range(0, len(questions), batch_size):
            suffixes = [self.prompt_ids(q)[p:] + cont for q in questions[start:start + batch_size]]
            ids, mask, positions = left_padded(suffixes, p, pad, self.model.device)
            logits = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True,
                                cache=start_cache(self.model, prefix, len(suffixes)),
                                logits_to_keep=len(cont) + 1).logits[:, :-1].float()
            target = torch.tensor(cont, device=logits.device).expand(len(suffixes), -1)
            out += logits.log_softmax(-1).gather(-1, target[..., None])[..., 0].sum(-1).tolist()
        return out

    def stream(self, question: str, write: Callable[[str], object] = sys.stdout.write) -> str:
        """Generate one answer, writing text as tokens arrive; returns the whole answer."""
        prompt = self.prompt_ids(question)
        tokens: list[int] = []
        shown = ""

        def on_tokens(new: list[int]) -> None:
            nonlocal shown
            tokens.extend(new)
            text = self.tokenizer.decode(tokens, skip_special_tokens=True).lstrip()
            if not text.endswith("\ufffd"):  # hold back half a UTF-8 character
                write(text[len(shown):])
                shown = text
                _flush()

        lookup_greedy(self.model, prompt, self.max_new_tokens, self.tokenizer.eos_token_id, self.corpus,
                      prefix=self.prefix(), on_tokens=on_tokens, bias=self.bias)
        answer = self._decode(tokens)
        write(answer[len(shown):] + "\n")  # whatever was held back (a cut-off character at the token limit)
        _flush()
        return answer


def _flush() -> None:
    sys.stdout.flush()


def _progress(total: int, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="q")


def ask(model_dir: str, question: str | None, max_new_tokens: int = 256, device: str = "auto",
        source_check: bool | None = None) -> None:
    """Answer one question, or (no question) read questions from stdin and stream answers. `source_check` (None: on
    where the folder holds the check's evidence, `SourceCheck.find`: a single-passage run folder, or a
    published one downloaded whole) prints each whole answer after the source check instead of streaming."""
    from groundtune.source_check import SourceCheck

    answerer = Answerer.from_dir(model_dir, device=device, max_new_tokens=max_new_tokens)
    if source_check is None:
        check = SourceCheck.find(model_dir)
    else:
        check = SourceCheck.from_dir(model_dir) if source_check else None

    def reply(q: str) -> None:
        if check is None:
            answerer.stream(q)
            return
        answer = answerer.stream(q, write=lambda _: None)
        flags = check.flags(answer, q)
        if flags:
            named = lambda where: ", ".join(repr(f["text"]) for f in flags if f.get("in", "answer") == where)  # noqa: E731
            why = [f"{named('answer')} in neither the passage nor your answers" if named("answer") else "",
                   f"the question asks about {named('question')}, which neither mentions" if named("question") else ""]
            print(f"[groundtune] source check: withheld {answer!r} ({'; '.join(w for w in why if w)})",
                  file=sys.stderr, flush=True)
        print(check.apply(answer, q), flush=True)

    if question is not None:
        reply(question)
        return
    interactive = sys.stdin.isatty()
    if interactive:
        print("Ask about the source (empty line or Ctrl-D to quit).", flush=True)
    while True:
        try:
            line = input("> " if interactive else "")
        except EOFError:
            break
        if not line.strip():
            if interactive:
                break
            continue
        reply(line.strip())
