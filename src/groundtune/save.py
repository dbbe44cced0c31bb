"""What a finished run folder holds, written by `save_run`.

    outputs/<run>/
      model.safetensors, config.json, generation_config.json   merged model (base + LoRA), loads alone
      tokenizer files, chat_template.jinja                      the chat template inserts the passage
      adapter/                                                  the LoRA adapter alone (PEFT, safetensors)
      dataset/                                                  the chat dataset (datasets.save_to_disk)
      config.yaml                                               the resolved config
      manifest.json                                             versions, data hash, timings, seed, base
      source_check.json                                         the source check's evidence (one passage only)
      loss.png                                                  training loss and learning rate per step

`transformers.pipeline("text-generation", model="outputs/<run>")` needs nothing else.
"""

from __future__ import annotations

import time
from pathlib import Path

from groundtune.chat import grounded_chat_template, system_text
from groundtune.config import RunConfig, to_dict
from groundtune.runs import environment, write_json

MANIFEST = "manifest.json"
RUN_FILES = ("config.yaml", "manifest.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
             "chat_template.jinja", "source_check.json")


def grounded_tokenizer(tokenizer, cfg: RunConfig, sources: list[str]):
    """The tokenizer with a chat template that supplies the system prompt + passage when none is sent."""
    unique = list(dict.fromkeys(sources))
    if len(unique) == 1:
        tokenizer.chat_template = grounded_chat_template(tokenizer.chat_template, system_text(unique[0], cfg.data))
    return tokenizer


# Settings a base model's generation_config.json may carry (Qwen2.5-Instruct ships repetition_penalty 1.1) that
# change greedy answers and that groundtune's evaluation does not apply: a saved model drops them, so `pipeline`
# answers as the evaluation measured. sequence_bias is applied by both (generate.SequenceBias) but set afresh.
UNMEASURED_GENERATION = ("repetition_penalty", "encoder_repetition_penalty", "no_repeat_ngram_size",
                         "encoder_no_repeat_ngram_size", "bad_words_ids", "suppress_tokens", "begin_suppress_tokens",
                         "min_length", "min_new_tokens", "sequence_bias", "forced_bos_token_id", "forced_eos_token_id",
                         "exponential_decay_length_penalty", "num_beams", "num_beam_groups", "diversity_penalty",
                         "length_penalty", "typical_p", "min_p", "epsilon_cutoff", "eta_cutoff", "renormalize_logits")


def set_generation_defaults(model, tokenizer, max_new_tokens: int = 256) -> None:
    """Greedy decoding that stops at the end-of-turn token, and nothing else that changes the answers: what
    `pipeline` users get by default is what the evaluation measured."""
    gc = model.generation_config
    gc.do_sample = False
    gc.temperature = None
    gc.top_p = None
    gc.top_k = None
    for name in UNMEASURED_GENERATION:
        if hasattr(gc, name):
            setattr(gc, name, None)
    gc.max_new_tokens = max_new_tokens
    gc.eos_token_id = tokenizer.eos_token_id
    gc.pad_token_id = tokenizer.pad_token_id


def abstention_bias(tokenizer, abstain_answer: str, bias: float) -> list:
    """A `generation_config.sequence_bias` entry that adds `bias` to the logit of the abstention's first token
    ("The" of "The source does not say") at the first token of an answer and nowhere else: the entry's other
    tokens are the chat template's generation prompt ("<|im_start|>assistant\\n"), which only the start of
    an answer follows. transformers' generate (so `pipeline`) and groundtune's decoding both apply it."""
    messages = [{"role": "user", "content": "Q"}]
    text = lambda add: tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add)  # noqa: E731
    with_prompt, without = text(True), text(False)
    if not with_prompt.startswith(without) or with_prompt == without:
        raise ValueError("the chat template has no generation prompt to anchor an abstention bias on")
    anchor = tokenizer(with_prompt[len(without):], add_special_tokens=False)["input_ids"]
    full = tokenizer(with_prompt, add_special_tokens=False)["input_ids"]
    if full[len(full) - len(anchor):] != anchor:
        raise ValueError("the generation prompt tokenizes differently inside a prompt; no abstention bias possible")
    first = tokenizer(abstain_answer.strip(), add_special_tokens=False)["input_ids"][0]
    return [[anchor + [first], float(bias)]]


def save_loss_plot(log_history: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [e["step"] for e in log_history if "loss" in e]
    losses = [e["loss"] for e in log_history if "loss" in e]
    lrs = [e.get("learning_rate") for e in log_history if "loss" in e]
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=110)
    ax.plot(steps, losses, marker="o", ms=3, label="training loss")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss (answer tokens)")
    ax.grid(alpha=0.3)
    if any(lr is not None for lr in lrs):
        ax2 = ax.twinx()
        ax2.plot(steps, lrs, color="tab:orange", alpha=0.6, label="learning rate")
        ax2.set_ylabel("learning rate")
    ax.set_title("groundtune LoRA training")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def save_run(folder: Path, cfg: RunConfig, base, tokenizer, peft_model, data, log_history, timer,
             global_batch: int, world_size: int) -> None:
    """Write everything a finished run folder holds (see the module docstring) into `folder`."""
    from groundtune import __version__

    folder = Path(folder)
    peft_model.save_pretrained(folder / "adapter", safe_serialization=True)
    adapter_cfg = folder / "adapter" / "adapter_config.json"
    _set_adapter_base(adapter_cfg, base.hub_id or base.path)
    merged = peft_model.merge_and_unload()
    set_generation_defaults(merged, tokenizer)
    merged.config.name_or_path = base.hub_id or base.path
    merged.save_pretrained(folder, safe_serialization=True)
    grounded_tokenizer(tokenizer, cfg, [p.source for p in data.user_pairs]).save_pretrained(folder)
    data.dataset.save_to_disk(str(folder / "dataset"))
    save_source_check(folder, cfg, data.user_pairs)
    save_loss_plot(log_history, folder / "loss.png")
    write_json(folder / "log_history.json", log_history)
    write_json(folder / MANIFEST, {
        "groundtune_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "base_model": base.name,
        "base_model_hub_id": base.hub_id,
        "base_model_license": base.license,
        "base_model_note": base.note,
        "seed": cfg.seed,
        "data": {**data.stats, "path": cfg.data.path, "user_pairs": len(data.user_pairs)},
        "global_batch_size": global_batch,
        "world_size": world_size,
        "timings_s": dict(timer.times),
        "final_loss": next((e["loss"] for e in reversed(log_history) if "loss" in e), None),
        "environment": environment(),
        "config": to_dict(cfg),
    })


def save_source_check(folder: Path, cfg: RunConfig, user_pairs) -> None:
    """The passage, the user's answers and the abstention answer, for `SourceCheck.from_dir` (one passage only:
    the check, like the chat template, takes a single source)."""
    from groundtune.source_check import FILE, SourceCheck

    sources = list(dict.fromkeys(p.source for p in user_pairs))
    if len(sources) == 1:
        SourceCheck(sources[0], tuple(p.answer for p in user_pairs), cfg.data.abstain_answer).write(folder / FILE)


def _set_adapter_base(path: Path, base_id: str) -> None:
    """Point the adapter at the base's Hub id, never at a local cache path."""
    import json

    data = json.loads(path.read_text())
    data["base_model_name_or_path"] = base_id
    path.write_text(json.dumps(data, indent=2) + "\n")


def scale_attention(peft_model, ratio: float) -> None:
    """Multiply the LoRA update of the attention layers (modules under a `self_attn`) by `ratio`, in place."""
    from peft.tuners.lora import LoraLayer

    for name, module in peft_model.named_modules():
        if isinstance(module, LoraLayer) and ".self_attn." in f".{name}.":
            module.scale_layer(ratio)


def remerged_folder(run: Path, adapter: Path, out: Path, scale: float = 1.0, attention_scale: float | None = None) -> Path:
    """A model folder like the finished `run`'s, with `adapter` (the run's own or a checkpoint's) merged into the
    base at `scale` x the update as trained (`extrapolate`; the run's own adapter already carries its
    lora.merge_scale in its lora_alpha, a checkpoint's does not), the run's files copied, its dataset linked and
    its config.yaml's lora.merge_scale set to `scale`. With `attention_scale`, the attention layers' update is
    merged at that scale instead (an experiment of `scripts/merge_scale.py`; config.yaml cannot record it)."""
    import dataclasses
    import json
    import shutil

    from peft import PeftModel

    from groundtune.config import dump_yaml, load_run_config
    from groundtune.model import load_base
    from groundtune.train import extrapolate

    run, out = Path(run), Path(out)
    cfg = load_run_config(run / "config.yaml")
    saved_alpha = json.loads((Path(adapter) / "adapter_config.json").read_text())["lora_alpha"]
    factor = scale * cfg.lora.alpha / saved_alpha
    cfg = dataclasses.replace(cfg, lora=dataclasses.replace(cfg.lora, merge_scale=scale))
    _, _, model = load_base(cfg.model, "cpu")
    adapted = PeftModel.from_pretrained(model, str(adapter))
    extrapolate(adapted, factor)
    if attention_scale is not None and attention_scale != scale:
        scale_attention(adapted, attention_scale / scale)
    out.mkdir(parents=True, exist_ok=True)
    adapted.merge_and_unload().save_pretrained(out, safe_serialization=True)
    for name in RUN_FILES:
        if (run / name).is_file() and name != "config.yaml":
            shutil.copy2(run / name, out / name)
    dump_yaml(cfg, out / "config.yaml")
    if not (out / "dataset").exists():
        (out / "dataset").symlink_to((run / "dataset").resolve())
    return out
