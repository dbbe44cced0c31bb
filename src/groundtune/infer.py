"""Inference: answer questions with a run folder (or any chat model folder), batched or streamed.

`Answerer` holds a model and tokenizer and answers a list of questions with greedy decoding, in
batches. `ask` answers one question, or opens an interactive session that streams tokens.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from groundtune.chat import to_messages
from groundtune.errors import GroundtuneError


def check_model_dir(path: str | Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise GroundtuneError("model folder not found", path)
    if not (path / "config.json").is_file():
        raise GroundtuneError("not a model folder (no config.json); pass a run folder such as outputs/latest", path)
    if not any(path.glob("*.safetensors")):
        raise GroundtuneError("no safetensors weights in the model folder", path)
    return path


class Answerer:
    """Greedy, batched answers from a chat model."""

    def __init__(self, model, tokenizer, system: str | None = None, max_new_tokens: int = 128):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.system = system
        self.max_new_tokens = max_new_tokens

    @classmethod
    def from_dir(cls, path: str | Path, device: str = "auto", **kwargs) -> "Answerer":
        from groundtune.config import ModelConfig
        from groundtune.model import load_model, load_tokenizer

        path = check_model_dir(path)
        try:
            tokenizer = load_tokenizer(str(path))
            model = load_model(str(path), ModelConfig(device=device))
        except OSError as e:
            raise GroundtuneError(f"cannot load model: {str(e).splitlines()[0]}", path) from None
        return cls(model, tokenizer, **kwargs)

    def prompt(self, question: str) -> str:
        messages = to_messages(question, None, self.system)
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    @torch.inference_mode()
    def answer(self, questions: list[str], batch_size: int = 16, progress: bool = False) -> list[str]:
        """Answers in input order. Prompts are sorted by length so each batch pads little."""
        order = sorted(range(len(questions)), key=lambda i: len(self.prompt(questions[i])))
        answers: list[str] = [""] * len(questions)
        batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
        bar = _progress(len(questions), "generating") if progress else None
        for idx in batches:
            for i, text in zip(idx, self._generate([self.prompt(questions[i]) for i in idx])):
                answers[i] = text
            if bar is not None:
                bar.update(len(idx))
        if bar is not None:
            bar.close()
        return answers

    def _generate(self, prompts: list[str]) -> list[str]:
        tok = self.tokenizer
        side = tok.padding_side
        tok.padding_side = "left"
        try:
            enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.model.device)
        finally:
            tok.padding_side = side
        out = self.model.generate(**enc, max_new_tokens=self.max_new_tokens, do_sample=False,
                                  pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
        return [tok.decode(row[enc["input_ids"].shape[1]:], skip_special_tokens=True).strip() for row in out]

    @torch.inference_mode()
    def stream(self, question: str, write=sys.stdout.write) -> str:
        """Generate one answer, writing tokens as they come."""
        from transformers import TextStreamer

        class _Writer(TextStreamer):
            def on_finalized_text(self, text, stream_end=False):
                write(text + ("\n" if stream_end else ""))
                sys.stdout.flush()

        enc = self.tokenizer(self.prompt(question), return_tensors="pt", add_special_tokens=False).to(self.model.device)
        out = self.model.generate(**enc, max_new_tokens=self.max_new_tokens, do_sample=False,
                                  pad_token_id=self.tokenizer.pad_token_id, eos_token_id=self.tokenizer.eos_token_id,
                                  streamer=_Writer(self.tokenizer, skip_prompt=True, skip_special_tokens=True))
        return self.tokenizer.decode(out[0][enc["input_ids"].shape[1]:], skip_special_tokens=True).strip()


def _progress(total: int, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="q")


def ask(model_dir: str, question: str | None, max_new_tokens: int = 256, device: str = "auto") -> None:
    """Answer one question, or (no question) read questions from stdin and stream answers."""
    answerer = Answerer.from_dir(model_dir, device=device, max_new_tokens=max_new_tokens)
    if question is not None:
        answerer.stream(question)
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
        answerer.stream(line.strip())
