"""Prompt formatting and loss masking: the small pieces of logic that are ours, not the tokenizer's.

* `system_text` puts the passage into the system prompt (open-book, RAFT-style).
* `grounded_chat_template` wraps the base model's own chat template so that a conversation without a
  system message gets that system prompt: `pipeline` users send only the question and get the same
  prompt the model was trained on.
* `tokenize_chat` renders a conversation with the chat template and marks the tokens that carry loss:
  the assistant's answer and the end-of-turn token, nothing else.
"""

from __future__ import annotations

import json

from groundtune.config import DataConfig
from groundtune.errors import GroundtuneError

IGNORE_INDEX = -100
TEMPLATE_MARKER = "{#- groundtune: default system prompt with the source passage -#}"


def system_text(source: str, cfg: DataConfig) -> str | None:
    """The system prompt for a passage, or None in closed-book mode (the base model's default applies)."""
    if not cfg.open_book:
        return None
    if cfg.passage_layout == "sentences":
        from groundtune.augment import sentences

        source = "\n".join(sentences(source))
    return cfg.system_prompt.replace("{source}", source)


def to_messages(question: str, answer: str | None, system: str | None) -> list[dict]:
    """A chat conversation: [system], user question, [assistant answer]."""
    messages = [{"role": "system", "content": system}] if system is not None else []
    messages.append({"role": "user", "content": question})
    if answer is not None:
        messages.append({"role": "assistant", "content": answer})
    return messages


def grounded_chat_template(base_template: str, system: str | None) -> str:
    """The base template, preceded by a rule that inserts `system` when the caller sent no system message."""
    if system is None:
        return base_template
    if TEMPLATE_MARKER in base_template:  # already grounded: replace the old passage, do not stack two
        base_template = base_template.split(TEMPLATE_MARKER, 2)[2]
    # A double-quoted literal; Jinja reads json's escapes for quotes, backslashes and newlines the same
    # way. Non-ASCII stays literal (Jinja does not decode \uXXXX escapes). A test renders tricky text.
    literal = json.dumps(system, ensure_ascii=False)
    rule = (
        "{%- if not messages or messages[0]['role'] != 'system' %}"
        "{%- set messages = [{'role': 'system', 'content': " + literal + "}] + messages %}"
        "{%- endif %}"
    )
    return TEMPLATE_MARKER + rule + TEMPLATE_MARKER + base_template


def render(tokenizer, messages: list[dict], generation_prompt: bool) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)


def tokenize_chat(tokenizer, messages: list[dict], max_length: int | None = None, where: str = "") -> dict:
    """Token ids of a conversation ending in an assistant turn, with labels only on that turn's answer.

    Labels are the answer's tokens plus the end-of-turn (eos) token that follows it, so the model
    learns to stop; the system prompt, question and template markup carry IGNORE_INDEX.
    """
    answer = messages[-1]["content"]
    prompt = render(tokenizer, messages[:-1], generation_prompt=True)
    full = render(tokenizer, messages, generation_prompt=False)
    if not full.startswith(prompt) or not full[len(prompt):].startswith(answer):
        raise GroundtuneError("the chat template does not render the answer right after the generation prompt; "
                              "this base model's template is not supported for loss masking", where or None)
    start, end = len(prompt), len(prompt) + len(answer)
    eos = tokenizer.eos_token
    if eos and full[end:].startswith(eos):
        end += len(eos)
    enc = tokenizer(full, add_special_tokens=False, return_offsets_mapping=True)
    ids = enc["input_ids"]
    labels = [tok if s >= start and e <= end and e > s else IGNORE_INDEX
              for tok, (s, e) in zip(ids, enc["offset_mapping"])]
    if max_length is not None and len(ids) > max_length:
        raise GroundtuneError(f"example is {len(ids)} tokens, over data.max_length={max_length} "
                              f"(raise data.max_length or shorten it)", where or None)
    if all(label == IGNORE_INDEX for label in labels):
        raise GroundtuneError("no answer tokens to learn from after tokenization", where or None)
    return {"input_ids": ids, "labels": labels}


def prompt_ids(tokenizer, messages: list[dict]) -> list[int]:
    """Token ids of a conversation up to and including the assistant generation prompt."""
    return tokenizer(render(tokenizer, messages, generation_prompt=True), add_special_tokens=False)["input_ids"]
