"""Train stage: LoRA on the chat dataset with the transformers `Trainer` (accelerate underneath).

Entry point: `train(cfg, ...)`. What is ours, and small:

* `PrefixSharingCollator` pads a batch and splits off the token prefix every example in it shares
  (chat markup + system prompt + passage, about 250 of 330 tokens here);
* `shared_prefix_loss` runs that prefix once, repeats its key/value cache across the batch and runs
  only the per-example suffixes; logits are computed only where a label is. The loss equals the
  plain full-sequence loss (a test checks it) for a fraction of the compute; with `train.length_power`
  the collator's `answer_length_weights` weigh each example's tokens by its answer's length;
* `StopOnSignal` turns Ctrl-C / SIGTERM into "save a checkpoint and stop" so `--resume` can continue.

Checkpointing, resume, schedules, logging and distributed training are the Trainer's.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import Trainer, TrainerCallback, TrainingArguments, set_seed

from groundtune.chat import IGNORE_INDEX
from groundtune.config import RunConfig, dump_yaml, load_run_config, to_dict
from groundtune.errors import GroundtuneError, Interrupted


# --------------------------------------------------------------------------------------------------
# Batching and loss


def common_prefix_length(sequences: list[list[int]]) -> int:
    first = sequences[0]
    n = min(len(s) for s in sequences)
    for i in range(n):
        if any(s[i] != first[i] for s in sequences):
            return i
    return n


class PrefixSharingCollator:
    """Right-pads a batch; with `share_prefix`, moves the tokens all examples share into `prefix_ids`.

    The prefix stops before the token preceding the first labelled token, so every logit that carries
    loss is computed in the suffix. Output: prefix_ids [P], input_ids/attention_mask/labels [B, S] and
    shift_labels [B, S] (the target of the logit at each suffix position, IGNORE_INDEX where none).
    """

    def __init__(self, pad_token_id: int, share_prefix: bool = True, length_power: float = 0.0,
                 mean_answer_tokens: float = 1.0, kind_powers: dict[str, float] | None = None):
        self.pad_token_id = pad_token_id
        self.share_prefix = share_prefix
        self.length_power = length_power
        self.mean_answer_tokens = mean_answer_tokens
        self.kind_powers = kind_powers or {}  # example kinds weighed with another power than length_power (0: per token)

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        ids = [list(f["input_ids"]) for f in features]
        labels = [list(f["labels"]) for f in features]
        prefix = 0
        if self.share_prefix:
            first_label = min(next(i for i, x in enumerate(lab) if x != IGNORE_INDEX) for lab in labels)
            prefix = min(common_prefix_length(ids), first_label - 1)
        suffix_len = max(len(s) for s in ids) - prefix
        batch_ids, batch_mask, batch_labels = [], [], []
        for seq, lab in zip(ids, labels):
            pad = suffix_len - (len(seq) - prefix)
            batch_ids.append(seq[prefix:] + [self.pad_token_id] * pad)
            batch_mask.append([1] * (len(seq) - prefix) + [0] * pad)
            batch_labels.append(lab[prefix:] + [IGNORE_INDEX] * pad)
        labels_t = torch.tensor(batch_labels)
        shift = torch.full_like(labels_t, IGNORE_INDEX)
        shift[:, :-1] = labels_t[:, 1:]
        batch = {
            "prefix_ids": torch.tensor(ids[0][:prefix], dtype=torch.long),
            "input_ids": torch.tensor(batch_ids),
            "attention_mask": torch.tensor(batch_mask),
            "labels": labels_t,
            "shift_labels": shift,
        }
        if self.length_power:
            powers = torch.tensor([self.kind_powers.get(f.get("kind"), self.length_power) for f in features])
            batch["token_weights"] = answer_length_weights(shift, powers, self.mean_answer_tokens)
        return batch


def answer_length_weights(shift_labels: torch.Tensor, power: float | torch.Tensor,
                          mean_answer_tokens: float) -> torch.Tensor:
    """Per-token loss weights [B, S]: each labelled token of a row with n labelled tokens weighs
    (mean_answer_tokens / n) ** power, others 0; `power` is one number or one per row [B]. Power 0 is the
    plain per-token loss (long answers count in proportion to their length), 1 gives every example the weight of an
    average one whatever its length; over the whole training set the weights then sum to about the number of
    labelled tokens, so the rate keeps its meaning."""
    labelled = shift_labels != IGNORE_INDEX
    n = labelled.sum(dim=1, keepdim=True).clamp(min=1).float()
    if isinstance(power, torch.Tensor):
        power = power.float().reshape(-1, 1)
    return (mean_answer_tokens / n) ** power * labelled


def shared_prefix_loss(model, batch: dict[str, torch.Tensor], reuse: PrefixReuse | None = None,
                       prefix_grad: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum of token cross-entropies, number of labelled tokens) for a collated batch. With `reuse`, the
    prefix's key/value cache comes from (or goes to) the accumulation window's `PrefixReuse` (whose own
    `grad` then decides); without, `prefix_grad` False runs the prefix without gradient."""
    prefix, ids, mask, shift = batch["prefix_ids"], batch["input_ids"], batch["attention_mask"], batch["shift_labels"]
    weights = batch.get("token_weights")
    n_rows = ids.shape[0]
    p = prefix.numel()
    cache = None
    if p:
        if reuse is not None:
            cache, p = reuse.cache_for(model, prefix, n_rows)
            rest = prefix[p:]  # prefix tokens past the reused part: run with every row (never labelled)
            ids = torch.cat([rest.expand(n_rows, -1), ids], dim=1)
            mask = torch.cat([mask.new_ones(n_rows, rest.numel()), mask], dim=1)
            shift = torch.cat([shift.new_full((n_rows, rest.numel()), IGNORE_INDEX), shift], dim=1)
            if weights is not None:
                weights = torch.cat([weights.new_zeros(n_rows, rest.numel()), weights], dim=1)
        else:
            cache = prefix_cache(model, prefix, n_rows, grad=prefix_grad)
        mask = torch.cat([mask.new_ones(n_rows, p), mask], dim=1)
    keep = (shift != IGNORE_INDEX).any(dim=0).nonzero().squeeze(1)
    positions = torch.arange(p, p + ids.shape[1], device=ids.device).expand(n_rows, -1)
    out = model(input_ids=ids, attention_mask=mask, position_ids=positions, cache=cache,
                use_cache=cache is not None, logits_to_keep=keep)
    targets = shift[:, keep]
    if weights is None:
        loss_sum = F.cross_entropy(out.logits.flatten(0, 1).float(), targets.flatten(),
                                   ignore_index=IGNORE_INDEX, reduction="sum")
    else:
        losses = F.cross_entropy(out.logits.flatten(0, 1).float(), targets.flatten(), ignore_index=IGNORE_INDEX,
                                 reduction="none")
        loss_sum = (losses * weights[:, keep].flatten()).sum()
    return loss_sum, (targets != IGNORE_INDEX).sum()


def prefix_cache(model, prefix: torch.Tensor, n_rows: int = 1, grad: bool = True):
    """The key/value cache of `prefix` run once, repeated for `n_rows` rows; `grad` False: no gradient
    flows back into it (a constant for the backward pass)."""
    with torch.set_grad_enabled(grad and torch.is_grad_enabled()):
        cache = model(input_ids=prefix[None], use_cache=True, logits_to_keep=1).cache
    if n_rows > 1:
        cache.batch_repeat_interleave(n_rows)
    return cache


class PrefixReuse:
    """The passage prefix run once per optimizer step instead of once per micro-batch.

    With gradient accumulation, every micro-batch of a step shares the same prompt prefix (system prompt +
    passage) and the same weights, so its key/value cache is computed at the step's first micro-batch and
    reused by the others through leaf copies. Each micro-batch's backward leaves its gradient on those
    leaves; `flush` (after the step's last backward, before clipping and the optimizer) sends their sum
    through the prefix's graph once. The gradient is the one separate prefixes give (a test checks it),
    for the compute of one prefix per step, and peak memory stays that of one micro-batch.

    A micro-batch reuses the longest common start of its prefix and the cached one; tokens past it are
    run with every row. When that would cost more than a fresh prefix, the cache is flushed and rebuilt.
    With `grad` False the prefix runs without gradient and `flush` has nothing to send back.
    """

    def __init__(self, grad: bool = True):
        self.grad = grad
        self.reused = 0  # micro-batches that reused a cached prefix (tests and logs)
        self._forget()

    def _forget(self) -> None:
        self.ids: list[int] | None = None  # the cached prefix's tokens; None: nothing cached
        self.cache = self.kv = self.leaves = None

    def cache_for(self, model, prefix: torch.Tensor, n_rows: int):
        """(cache with the reused prefix repeated for `n_rows` rows, number of prefix tokens it holds)."""
        tokens = prefix.tolist()
        if self.ids is not None:
            n = common_prefix_length([self.ids, tokens])
            if (len(tokens) - n) * n_rows < len(tokens):
                self.reused += 1
                return self._repeated(n, n_rows), n
            self.flush()
        cache = prefix_cache(model, prefix, grad=self.grad)
        if not self.supported(cache):  # keep the per-micro-batch prefix
            cache.batch_repeat_interleave(n_rows)
            return cache, len(tokens)
        self.ids, self.cache = tokens, cache
        self.kv = [(layer.keys, layer.values) for layer in cache.layers]
        self.leaves = [(k.detach().requires_grad_(self.grad), v.detach().requires_grad_(self.grad)) for k, v in self.kv]
        return self._repeated(len(tokens), n_rows), len(tokens)

    def _repeated(self, n: int, n_rows: int):
        for layer, (k, v) in zip(self.cache.layers, self.leaves):
            layer.keys = k[..., :n, :].repeat_interleave(n_rows, dim=0)
            layer.values = v[..., :n, :].repeat_interleave(n_rows, dim=0)
        return self.cache

    def flush(self) -> None:
        """Backpropagate the gradient the micro-batches left on the cached keys/values, then forget them."""
        if self.ids is None:
            return
        pairs = [(t, leaf.grad) for kv, leaves in zip(self.kv, self.leaves) for t, leaf in zip(kv, leaves)
                 if leaf.grad is not None]
        if pairs:
            torch.autograd.backward([t for t, _ in pairs], [g for _, g in pairs])
        self._forget()

    @staticmethod
    def supported(cache) -> bool:
        """Only full-attention dynamic caches (a sliding-window layer keeps a cropped window)."""
        from transformers.cache_utils import DynamicLayer

        return all(type(layer) is DynamicLayer for layer in cache.layers)


class ContextGroupedSampler(torch.utils.data.Sampler):
    """A shuffled order in which each batch holds examples shown the same passage (the same prompt
    prefix), so the batch shares a long prefix, while the batches themselves come in random order.

    Each group is shuffled and cut into batches of `batch_size` (similar lengths together); leftovers
    of all groups are pooled into mixed batches. Batch order is shuffled across groups, so consecutive
    steps do not all see the same kind of example. Deterministic per seed and epoch (`set_epoch`,
    which the Trainer calls, also on --resume).
    """

    def __init__(self, contexts: list[str], lengths: list[int], batch_size: int, seed: int):
        self.groups: dict[str, list[int]] = {}
        for i, c in enumerate(contexts):
            self.groups.setdefault(c, []).append(i)
        self.lengths, self.batch_size, self.seed, self.epoch = lengths, batch_size, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.lengths)

    def _chunks(self, idx: list[int]) -> tuple[list[list[int]], list[int]]:
        full = len(idx) - len(idx) % self.batch_size
        head = sorted(idx[:full], key=lambda i: self.lengths[i])
        return [head[i:i + self.batch_size] for i in range(0, full, self.batch_size)], idx[full:]

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 1000 + self.epoch)
        batches, leftovers = [], []
        for idx in self.groups.values():
            chunks, rest = self._chunks([idx[i] for i in torch.randperm(len(idx), generator=g).tolist()])
            batches += chunks
            leftovers += rest
        chunks, rest = self._chunks(leftovers)
        batches += chunks + ([rest] if rest else [])
        order = torch.randperm(len(batches), generator=g).tolist()
        if rest:  # the one short batch goes last, so every other batch stays aligned
            order = [k for k in order if k != len(batches) - 1] + [len(batches) - 1]
        return iter([i for k in order for i in batches[k]])


class GroundtuneTrainer(Trainer):
    """Trainer whose loss is `shared_prefix_loss`, normalised like the Trainer's own (per labelled token),
    whose batches keep examples with the same passage together (`ContextGroupedSampler`), and which, with
    `reuse_prefix`, runs the passage once per optimizer step (`PrefixReuse`); with `prefix_grad` False,
    without gradient."""

    def __init__(self, *args, reuse_prefix: bool = False, prefix_grad: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self.prefix_grad = prefix_grad
        self.prefix_reuse = PrefixReuse(prefix_grad) if reuse_prefix and self._can_reuse_prefix() else None

    def _can_reuse_prefix(self) -> bool:
        """One process, gradient accumulation, no DeepSpeed/FSDP, no NEFTune (its noise would be drawn once
        per step for the prefix instead of once per micro-batch)."""
        a = self.args
        return (a.gradient_accumulation_steps > 1 and a.world_size == 1 and not a.neftune_noise_alpha
                and not self.is_deepspeed_enabled and not self.is_fsdp_enabled)

    def _get_train_sampler(self, train_dataset=None):
        ds = train_dataset if train_dataset is not None else self.train_dataset
        if self.args.train_sampling_strategy == "group_by_length" and "context" in getattr(ds, "column_names", []):
            return ContextGroupedSampler(ds["context"], ds["length"], self.args.per_device_train_batch_size,
                                         self.args.data_seed)
        return super()._get_train_sampler(train_dataset)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        loss_sum, n_tokens = shared_prefix_loss(model, inputs, self.prefix_reuse, self.prefix_grad)
        if num_items_in_batch is None:
            return loss_sum / n_tokens.clamp(min=1)
        loss = loss_sum / num_items_in_batch
        if self.args.average_tokens_across_devices and self.args.world_size > 1:
            loss = loss * self.accelerator.num_processes  # DDP averages gradients; the count was summed
        return loss

    def training_step(self, model, inputs, num_items_in_batch=None):
        loss = super().training_step(model, inputs, num_items_in_batch)
        if self.prefix_reuse is not None and self.accelerator.sync_gradients:
            self.prefix_reuse.flush()  # the step's last micro-batch: clipping and the optimizer come next
        return loss


# --------------------------------------------------------------------------------------------------
# Interruption


class StopOnSignal(TrainerCallback):
    """First Ctrl-C / SIGTERM: finish the current step, save a checkpoint, stop. Second Ctrl-C: abort."""

    def __init__(self):
        self.received: str | None = None
        self._previous = {}

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)

    def uninstall(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, signum, frame):
        if self.received is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.received = signal.Signals(signum).name
        print(f"\n[groundtune] {self.received}: stopping after this step and saving a checkpoint "
              f"(Ctrl-C again to abort without saving)", flush=True)

    def on_step_end(self, args, state, control, **kwargs):
        if self.received is not None:
            control.should_save = True
            control.should_training_stop = True
        return control


# --------------------------------------------------------------------------------------------------
# The stage


def training_arguments(cfg: RunConfig, output_dir: Path, device: str, dtype: torch.dtype) -> TrainingArguments:
    t = cfg.train
    return TrainingArguments(
        output_dir=str(output_dir),
        num_train_epochs=t.epochs,
        per_device_train_batch_size=t.batch_size,
        gradient_accumulation_steps=t.grad_accum,
        learning_rate=t.learning_rate,
        lr_scheduler_type=t.lr_scheduler,
        warmup_steps=t.warmup_ratio,
        weight_decay=t.weight_decay,
        max_grad_norm=t.max_grad_norm,
        logging_steps=t.logging_steps,
        save_strategy="steps" if t.save_steps else "epoch",
        save_steps=t.save_steps or 500,
        save_total_limit=t.save_total_limit,
        seed=cfg.seed,
        data_seed=cfg.seed if t.data_seed is None else t.data_seed,
        bf16=dtype == torch.bfloat16 and device == "cuda",
        fp16=dtype == torch.float16 and device == "cuda",
        use_cpu=device == "cpu",
        report_to="none",
        remove_unused_columns=False,
        train_sampling_strategy="group_by_length" if t.group_by_length else "random",
        activation_checkpointing=t.gradient_checkpointing,  # transformers 5 name of gradient checkpointing
        activation_checkpointing_kwargs={"use_reentrant": False} if t.gradient_checkpointing else None,
        ddp_find_unused_parameters=False,
        neftune_noise_alpha=t.neftune_alpha or None,
        dataloader_num_workers=0,
        disable_tqdm=False,
    )


def lora_model(model, cfg: RunConfig):
    from peft import LoraConfig, get_peft_model

    lora = cfg.lora
    peft_cfg = LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                          target_modules=lora.target_modules, bias="none", task_type="CAUSAL_LM")
    if cfg.model.load_in_4bit:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=cfg.train.gradient_checkpointing)
    return get_peft_model(model, peft_cfg)


def extrapolate(peft_model, factor: float) -> None:
    """Multiply the trained LoRA update by `factor` (`lora.merge_scale`) in every adapted layer, and the adapter
    config's lora_alpha with it, so that `save_pretrained` and `merge_and_unload` both give base + factor x update."""
    if factor == 1:
        return
    from peft.tuners.lora import LoraLayer

    for module in peft_model.modules():
        if isinstance(module, LoraLayer):
            module.scale_layer(factor)
    for config in peft_model.peft_config.values():
        alpha = config.lora_alpha * factor
        config.lora_alpha = int(alpha) if float(alpha).is_integer() else alpha  # 64 x 1.25 is saved as 80


def kind_powers(length_power_user: bool | float) -> dict[str, float]:
    """The collator's per-kind length powers from `train.length_power_user` (true: none, the user's pairs take
    length_power like every example)."""
    if length_power_user is True:
        return {}
    return {"user": float(length_power_user)}  # false -> 0.0: per token


def loraplus_optimizer(peft_model, cfg: RunConfig):
    """With `train.loraplus_ratio`, AdamW whose LoRA B matrices learn `loraplus_ratio` times faster (PEFT's LoRA+);
    None otherwise (the Trainer builds its own). The Trainer's scheduler drives both rates."""
    t = cfg.train
    if not t.loraplus_ratio:
        return None
    from peft.optimizers import create_loraplus_optimizer

    return create_loraplus_optimizer(peft_model, torch.optim.AdamW, lr=t.learning_rate, loraplus_lr_ratio=t.loraplus_ratio,
                                     weight_decay=t.weight_decay)


def seeded_lora_model(model, cfg: RunConfig):
    """`lora_model` with the adapter initialised from the run's `seed` (`train.data_seed` orders the examples only)."""
    set_seed(cfg.seed)
    return lora_model(model, cfg)


def check_resume_config(cfg: RunConfig, saved: Path) -> None:
    """A resumed run must use the config it started with."""
    before = to_dict(load_run_config(saved))
    now = to_dict(cfg)
    diffs = [k for k in now if before.get(k) != now[k]]
    if diffs:
        raise GroundtuneError(f"--resume with a different config than the interrupted run (section(s) {', '.join(diffs)}); "
                              f"rerun with the same config, or --overwrite to start over", saved)


def train(cfg: RunConfig, resume: bool = False, overwrite: bool = False) -> Path:
    """Data -> LoRA training -> a finished run folder (merged model + adapter + dataset + manifest). Returns it.

    Everything that can be wrong with the input is checked before anything is written.
    """
    from accelerate import PartialState

    from groundtune import model as models
    from groundtune.data import format_stats, prepare_data
    from groundtune.runs import RunDir, Timer

    device = models.pick_device(cfg.model.device)
    # cpu=True: under `accelerate launch`/`torchrun` on CPUs the processes form a gloo group; without it
    # accelerate finds no GPU and every process believes it is the only (main) one until the Trainer starts.
    state = PartialState(cpu=device == "cpu")
    timer = Timer()
    run = RunDir(cfg.output_dir, cfg.run_name)
    run.check(overwrite=overwrite, resume=resume)
    if resume:
        check_resume_config(cfg, run.partial / "config.yaml")
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    models.prefer_gqa_attention(device)

    # Main process first: an embedded base is dequantized and cached once, not by every process at once.
    # Its barrier also lets every process finish `run.check` before the main one creates the partial folder.
    with timer("load_tokenizer"), state.main_process_first():
        base = models.resolve(cfg.model.base_model)
        tokenizer = models.load_tokenizer(base.path)
    with timer("data"):
        data = prepare_data(cfg.data, tokenizer)
    _log(state, f"data: {format_stats(data.stats)}")
    with timer("load_model"):
        model = models.load_model(base.path, cfg.model, device)
    if state.is_main_process:
        run.start(resume)
        if not resume:
            dump_yaml(cfg, run.partial / "config.yaml")
    state.wait_for_everyone()
    try:
        return _train_and_save(cfg, run, state, timer, base, tokenizer, model, data, resume)
    except Interrupted:
        raise
    except BaseException:
        if state.is_main_process:
            run.abandon()
        raise


def _train_and_save(cfg: RunConfig, run, state, timer, base, tokenizer, model, data, resume: bool) -> Path:
    from groundtune.save import save_run

    peft_model = seeded_lora_model(model, cfg)
    args = training_arguments(cfg, run.checkpoints, model.device.type, model.dtype)
    share = cfg.train.prefix_sharing and not cfg.train.gradient_checkpointing
    stopper = StopOnSignal()
    mean_answer = data.stats["answer_tokens_total"] / max(data.stats["examples"], 1)  # length_power's reference length
    collator = PrefixSharingCollator(tokenizer.pad_token_id, share, cfg.train.length_power, mean_answer,
                                     kind_powers(cfg.train.length_power_user))
    trainer = GroundtuneTrainer(model=peft_model, args=args, train_dataset=data.tokenized, data_collator=collator,
                                callbacks=[stopper], optimizers=(loraplus_optimizer(peft_model, cfg), None),
                                reuse_prefix=share and cfg.train.prefix_reuse, prefix_grad=cfg.train.prefix_gradient)
    global_batch = cfg.train.batch_size * max(state.num_processes, 1) * cfg.train.grad_accum
    _log(state, f"training {cfg.model.base_model} on {model.device.type} ({model.dtype}), {state.num_processes} "
                f"process(es): {len(data.tokenized)} examples x {cfg.train.epochs} epochs, global batch {global_batch} "
                f"({cfg.train.batch_size} per device x {state.num_processes} x {cfg.train.grad_accum} accumulation)")
    stopper.install()
    try:
        with timer("train"):
            result = trainer.train(resume_from_checkpoint=str(run.last_checkpoint()) if resume else None)
    finally:
        stopper.uninstall()
    if stopper.received:
        raise Interrupted(f"training stopped by {stopper.received} at step {trainer.state.global_step}/"
                          f"{trainer.state.max_steps}; checkpoint saved; rerun the same command with --resume "
                          f"to finish", run.checkpoints)
    _log(state, f"trained in {timer.times['train']:.1f} s ({result.metrics.get('train_loss', float('nan')):.4f} mean loss)")

    if trainer.is_fsdp_enabled or trainer.is_deepspeed_enabled:
        peft_model = unsharded_copy(trainer, base.path, cfg, model.dtype)
    if state.is_main_process:
        extrapolate(peft_model, cfg.lora.merge_scale)
        with timer("save"):
            save_run(run.partial, cfg, base, tokenizer, peft_model, data, trainer.state.log_history, timer,
                     global_batch=global_batch, world_size=state.num_processes)
        final = run.finish(keep_checkpoints=cfg.train.keep_checkpoints)
        _log(state, f"run written to {final} (latest -> {final.name})")
    state.wait_for_everyone()
    return run.final


def unsharded_copy(trainer, base_path: str, cfg: RunConfig, dtype: torch.dtype):
    """The trained model in one piece, on the main process (None elsewhere), when FSDP or DeepSpeed split it.

    FSDP and ZeRO-3 leave each process a shard of every weight, so the main process alone cannot save
    or merge them. Every process joins the gather (a collective); the main process then loads a fresh
    copy of the base on the CPU, adds the LoRA layers and copies the trained adapter weights into it.
    """
    import dataclasses

    from groundtune import model as models

    full = trainer.accelerator.get_state_dict(trainer.model_wrapped)
    if not trainer.accelerator.is_main_process:
        return None
    plain = dataclasses.replace(cfg, model=dataclasses.replace(
        cfg.model, dtype=str(dtype).removeprefix("torch."), device="cpu", load_in_4bit=False))
    copy = lora_model(models.load_model(base_path, plain.model, "cpu"), plain)
    adapter = {k: v for k, v in full.items() if "lora_" in k}
    missing = [k for k in copy.load_state_dict(adapter, strict=False).missing_keys if "lora_" in k]
    if missing or not adapter:
        raise GroundtuneError(f"gathering the trained adapter failed: {len(missing)} LoRA weights missing "
                              f"(for DeepSpeed ZeRO-3 set zero3_save_16bit_model: true)")
    return copy


def _log(state, message: str) -> None:
    if state.is_main_process:
        print(f"[groundtune] {message}", flush=True)

