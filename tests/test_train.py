import json
import os
from pathlib import Path

import pytest
import torch

from groundtune.chat import IGNORE_INDEX, system_text, to_messages, tokenize_chat
from groundtune.cli import main
from groundtune.config import DataConfig, load_config
from groundtune.train import PrefixSharingCollator, common_prefix_length, shared_prefix_loss

from conftest import build_tiny_model, cli_overrides, load_script, tiny_run_overrides

PASSAGE = "Alice founded Acme in 2001. Acme makes two kinds of widgets in Lyon."
QA = [("Who founded Acme?", "Alice founded it."),
      ("What does Acme make?", "Two kinds of widgets, made in Lyon."),
      ("When was Acme founded?", "In 2001.")]


def examples(tokenizer):
    system = system_text(PASSAGE, DataConfig())
    return [tokenize_chat(tokenizer, to_messages(q, a, system)) for q, a in QA]


def test_common_prefix_length():
    assert common_prefix_length([[1, 2, 3], [1, 2, 4, 5], [1, 2]]) == 2
    assert common_prefix_length([[7], [8]]) == 0


def test_collator_shares_prefix_and_shifts_labels(tokenizer):
    feats = examples(tokenizer)
    batch = PrefixSharingCollator(tokenizer.pad_token_id, share_prefix=True)(feats)
    p = batch["prefix_ids"].numel()
    assert p > 20, "the system prompt with the passage is shared"
    for row, f in enumerate(feats):
        n = len(f["input_ids"]) - p
        assert batch["input_ids"][row, :n].tolist() == f["input_ids"][p:]
        assert batch["attention_mask"][row].sum().item() == n
        assert batch["shift_labels"][row, : n - 1].tolist() == f["labels"][p + 1:]
    assert (batch["shift_labels"][:, -1] == IGNORE_INDEX).all()
    plain = PrefixSharingCollator(tokenizer.pad_token_id, share_prefix=False)(feats)
    assert plain["prefix_ids"].numel() == 0


@pytest.mark.parametrize("share", [True, False])
def test_shared_prefix_loss_equals_plain_loss(tokenizer, share):
    model = build_tiny_model(tokenizer, seed=1).eval()
    feats = examples(tokenizer)
    batch = PrefixSharingCollator(tokenizer.pad_token_id, share_prefix=share)(feats)
    loss_sum, n = shared_prefix_loss(model, batch)
    # reference: each example alone, the transformers way (shifted mean cross-entropy over labels)
    ref_sum, ref_n = 0.0, 0
    for f in feats:
        ids = torch.tensor([f["input_ids"]])
        labels = torch.tensor([f["labels"]])
        k = (labels[0, 1:] != IGNORE_INDEX).sum().item()
        ref_sum += model(input_ids=ids, labels=labels).loss.item() * k
        ref_n += k
    assert n.item() == ref_n
    assert loss_sum.item() == pytest.approx(ref_sum, rel=1e-5)


def _tiny_lora_model(tokenizer):
    """A tiny model with the default LoRA layers, lora_B drawn at random (it starts at zero, which would leave
    lora_A without gradient)."""
    from groundtune.config import RunConfig
    from groundtune.train import lora_model

    torch.manual_seed(0)
    model = lora_model(build_tiny_model(tokenizer, seed=3), RunConfig())
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.02)
    return model


def _lora_grads(model) -> dict[str, torch.Tensor]:
    return {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("order", [(0, 1), (1, 0)])
def test_prefix_reuse_gives_the_gradient_of_separate_prefixes(tokenizer, order):
    """One accumulation window of two micro-batches: the prefix run once and reused gives the gradient of
    running it per micro-batch. Batch A (one example) has a longer prefix (its question too) than batch B
    (two examples): reusing A's cache in B slices it; reusing B's in A runs A's question with the rows."""
    from groundtune.train import PrefixReuse

    model = _tiny_lora_model(tokenizer)
    collate = PrefixSharingCollator(tokenizer.pad_token_id)
    feats = examples(tokenizer)
    batches = [collate(feats[:1]), collate(feats[1:])]
    batches = [batches[i] for i in order]
    assert batches[0]["prefix_ids"].numel() != batches[1]["prefix_ids"].numel()

    def grads(reuse):
        model.zero_grad()
        for b in batches:
            loss, _ = shared_prefix_loss(model, b, reuse)
            loss.backward()
        if reuse is not None:
            reuse.flush()
        return _lora_grads(model)

    separate = grads(None)
    reuse = PrefixReuse()
    once = grads(reuse)
    assert reuse.reused == 1 and reuse.ids is None
    assert separate.keys() == once.keys() and len(once) > 0
    for k in separate:
        assert torch.allclose(separate[k], once[k], atol=1e-6, rtol=1e-4), k


@pytest.mark.parametrize("reuse", [False, True])
def test_prefix_without_gradient_backpropagates_through_the_suffix_only(tokenizer, monkeypatch, reuse):
    """train.prefix_gradient false: the same loss, and the gradient of a prefix cache computed by a frozen copy
    of the model (a constant for the backward pass), with or without reuse across micro-batches; it differs
    from the full gradient."""
    import copy

    import groundtune.train as train_mod
    from groundtune.train import PrefixReuse

    model = _tiny_lora_model(tokenizer)
    frozen = copy.deepcopy(model).requires_grad_(False)
    collate = PrefixSharingCollator(tokenizer.pad_token_id)
    feats = examples(tokenizer)
    batches = [collate(feats[:1]), collate(feats[1:])]

    def grads(prefix_grad, reuse=None):
        model.zero_grad()
        losses = []
        for b in batches:
            loss, _ = shared_prefix_loss(model, b, reuse, prefix_grad)
            loss.backward()
            losses.append(loss.item())
        if reuse is not None:
            reuse.flush()
        return losses, _lora_grads(model)

    full_losses, full = grads(True)
    losses, stopped = grads(False, PrefixReuse(grad=False) if reuse else None)
    real_cache = train_mod.prefix_cache
    monkeypatch.setattr(train_mod, "prefix_cache", lambda m, *a, **k: real_cache(frozen, *a, **k))
    ref_losses, ref = grads(True)
    assert losses == pytest.approx(full_losses, rel=1e-6) and ref_losses == pytest.approx(full_losses, rel=1e-6)
    assert stopped.keys() == ref.keys() == full.keys() and len(ref) > 0
    for k in ref:  # equal up to float32 rounding of sums taken in another order: a few ulps of the largest entry
        # (2.4e-7 at entries up to 1.8 on an avx2 CPU; an absolute 1e-7 held only on avx512), far below the gap to `full`
        assert torch.allclose(stopped[k], ref[k], atol=1e-6 * ref[k].abs().max().item(), rtol=1e-5), k
    assert any(not torch.allclose(full[k], ref[k], atol=1e-6, rtol=1e-3) for k in ref)


def test_trainer_with_prefix_reuse_takes_the_same_steps(tokenizer):
    """Through the Trainer (2 micro-batches per step, 2 steps): the same LoRA weights with and without reuse,
    and the reuse happened (the flush runs before clipping and the optimizer step)."""
    import datasets
    from transformers import TrainingArguments

    from groundtune.config import RunConfig
    from groundtune.train import GroundtuneTrainer, lora_model

    feats = examples(tokenizer) * 2
    out = {}
    for reuse in (False, True):
        torch.manual_seed(0)
        model = lora_model(build_tiny_model(tokenizer, seed=4), RunConfig())
        args = TrainingArguments(output_dir="/tmp/unused", max_steps=2, per_device_train_batch_size=1,
                                 gradient_accumulation_steps=2, learning_rate=1e-2, max_grad_norm=1.0,
                                 report_to="none", use_cpu=True, save_strategy="no", remove_unused_columns=False,
                                 disable_tqdm=True, seed=0)
        trainer = GroundtuneTrainer(model=model, args=args, train_dataset=datasets.Dataset.from_list(feats),
                                    data_collator=PrefixSharingCollator(tokenizer.pad_token_id), reuse_prefix=reuse)
        trainer.train()
        assert (trainer.prefix_reuse is not None) == reuse
        if reuse:
            assert trainer.prefix_reuse.reused == 2 and trainer.prefix_reuse.ids is None
        out[reuse] = {k: v.detach().clone() for k, v in model.named_parameters() if "lora_" in k}
    for k in out[False]:
        assert torch.allclose(out[False][k], out[True][k], atol=1e-6), k
    assert any(not torch.equal(out[True][k], out[True][k] * 0) for k in out[True] if "lora_B" in k)


def test_lora_moves_adapter_and_leaves_base_untouched(tokenizer):
    from transformers import TrainingArguments

    from groundtune.config import RunConfig
    from groundtune.train import GroundtuneTrainer, lora_model

    model = build_tiny_model(tokenizer, seed=2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    peft_model = lora_model(model, RunConfig())
    lora_before = {k: v.clone() for k, v in peft_model.named_parameters() if "lora_" in k}
    assert lora_before and all(p.requires_grad == ("lora_" in n) for n, p in peft_model.named_parameters())
    import datasets

    ds = datasets.Dataset.from_list(examples(tokenizer))
    args = TrainingArguments(output_dir="/tmp/unused", max_steps=3, per_device_train_batch_size=3, learning_rate=1e-2,
                             report_to="none", use_cpu=True, save_strategy="no", remove_unused_columns=False,
                             disable_tqdm=True)
    GroundtuneTrainer(model=peft_model, args=args, train_dataset=ds,
                      data_collator=PrefixSharingCollator(tokenizer.pad_token_id)).train()
    moved = [k for k, v in peft_model.named_parameters() if "lora_B" in k and not torch.equal(v, lora_before[k])]
    assert len(moved) == len([k for k in lora_before if "lora_B" in k])
    base_now = {k.replace("base_model.model.", "").replace(".base_layer", ""): v
                for k, v in peft_model.state_dict().items() if "lora_" not in k}
    for k, v in before.items():
        assert torch.equal(base_now[k], v), k


RUN_FILES = {"adapter", "chat_template.jinja", "config.json", "config.yaml", "dataset", "generation_config.json",
             "log_history.json", "loss.png", "manifest.json", "model.safetensors", "tokenizer.json",
             "source_check.json", "tokenizer_config.json"}


def test_train_cli_writes_exactly_the_run_files(tiny_run):
    run = tiny_run / "tiny"
    assert {p.name for p in run.iterdir()} == RUN_FILES
    assert {p.name for p in tiny_run.iterdir()} == {"tiny", "latest"}
    assert os.readlink(tiny_run / "latest") == "tiny"
    adapter = json.loads((run / "adapter" / "adapter_config.json").read_text())
    assert adapter["r"] == 32 and adapter["lora_alpha"] == 80  # alpha 64 x lora.merge_scale 1.25
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["seed"] == 42 and manifest["data"]["user_pairs"] == 9 and len(manifest["data"]["data_hash"]) == 64
    assert manifest["environment"]["packages"]["transformers"] and manifest["timings_s"]["train"] > 0
    assert load_config(run / "config.yaml").run_name == "tiny"
    assert not list(run.glob("*.bin")) and not list(run.glob("*.pt")) and not list(run.glob("*.pkl"))


def test_run_folder_loads_with_pipeline_and_question_only(tiny_run):
    from transformers import pipeline

    pipe = pipeline("text-generation", model=str(tiny_run / "latest"))
    prompt = pipe.tokenizer.apply_chat_template([{"role": "user", "content": "Who?"}], tokenize=False,
                                                add_generation_prompt=True)
    assert "NATO Secretary General Mark Rutte has been at the forefront" in prompt
    out = pipe([{"role": "user", "content": "Who?"}], max_new_tokens=5)
    assert out[0]["generated_text"][-1]["role"] == "assistant"


def test_merged_model_matches_base_plus_adapter(tiny_run, tiny_model_dir, tokenizer):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    run = tiny_run / "tiny"
    ids = torch.tensor([tokenizer("Rutte welcomed Germany's decision")["input_ids"]])
    merged = AutoModelForCausalLM.from_pretrained(run).eval()
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    with torch.no_grad():
        base_logits = base(ids).logits
        adapted = PeftModel.from_pretrained(base, run / "adapter").eval()
        merged_logits, adapted_logits = merged(ids).logits, adapted(ids).logits
    assert torch.allclose(merged_logits, adapted_logits, atol=1e-4)
    assert not torch.allclose(merged_logits, base_logits, atol=1e-4), "training changed the model"


def test_extrapolate_scales_the_update_in_the_merged_model_and_the_saved_adapter(tokenizer, tmp_path):
    """lora.merge_scale: base + factor x update in the merged weights, and the saved adapter (lora_alpha x factor)
    gives the merged model's outputs when PEFT loads it."""
    import copy

    from peft import PeftModel

    from groundtune.train import extrapolate

    ids = torch.tensor([tokenizer("Rutte welcomed Germany's decision")["input_ids"]])
    base = build_tiny_model(tokenizer, seed=3).state_dict()
    model = _tiny_lora_model(tokenizer)
    plain = copy.deepcopy(model).merge_and_unload().state_dict()
    extrapolate(model, 1.5)
    model.save_pretrained(tmp_path / "adapter")
    merged = model.merge_and_unload().eval()
    scaled = merged.state_dict()
    moved = [k for k in base if not torch.equal(plain[k], base[k])]
    assert moved, "the random lora_B moves some weights"
    for k in base:
        assert torch.allclose(scaled[k] - base[k], 1.5 * (plain[k] - base[k]), atol=1e-6), k
    assert json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())["lora_alpha"] == 96
    reloaded = PeftModel.from_pretrained(build_tiny_model(tokenizer, seed=3), tmp_path / "adapter").eval()
    with torch.no_grad():
        assert torch.allclose(reloaded(ids).logits, merged(ids).logits, atol=1e-5)


def test_scale_attention_scales_only_the_attention_layers_update(tokenizer):
    """scripts/merge_scale.py --attention-scale: after extrapolate(1.25), scale_attention(1.5 / 1.25) leaves the
    MLP layers at 1.25 x the update and puts the attention layers at 1.5 x."""
    import copy

    from groundtune.save import scale_attention
    from groundtune.train import extrapolate

    base = build_tiny_model(tokenizer, seed=3).state_dict()
    model = _tiny_lora_model(tokenizer)
    plain = copy.deepcopy(model).merge_and_unload().state_dict()
    extrapolate(model, 1.25)
    scale_attention(model, 1.5 / 1.25)
    scaled = model.merge_and_unload().state_dict()
    moved = [k for k in base if not torch.equal(plain[k], base[k])]
    assert any("self_attn" in k for k in moved) and any("mlp" in k for k in moved)
    for k in moved:
        factor = 1.5 if "self_attn" in k else 1.25
        assert torch.allclose(scaled[k] - base[k], factor * (plain[k] - base[k]), atol=1e-6), k


def test_existing_run_is_not_overwritten(tiny_run, tiny_model_dir, capsys):
    before = (tiny_run / "tiny" / "manifest.json").read_text()
    code = main(["train", *cli_overrides(tiny_run_overrides(tiny_model_dir, tiny_run))])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert err[0] == f"groundtune: error: {tiny_run / 'tiny'}: run folder already exists; pass --overwrite to replace it or choose another run_name"
    assert (tiny_run / "tiny" / "manifest.json").read_text() == before


def test_unknown_cli_key_is_one_line_and_writes_nothing(tmp_path, tiny_model_dir, capsys):
    overrides = tiny_run_overrides(tiny_model_dir, tmp_path / "out")
    code = main(["train", *cli_overrides(overrides), "--train.epocs", "2"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == ["groundtune: error: --train.epocs: unknown config key (did you mean 'train.epochs'?)"]
    assert not (tmp_path / "out").exists()


def test_gradient_checkpointing_trains(tiny_model_dir, tmp_path, monkeypatch):
    """train.gradient_checkpointing reaches the Trainer (transformers 5 calls it activation checkpointing)."""
    from transformers import Trainer

    seen = {}
    original = Trainer.train

    def spy(self, *args, **kwargs):
        seen["args"] = self.args.activation_checkpointing
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "train", spy)
    overrides = tiny_run_overrides(tiny_model_dir, tmp_path / "out", **{"train.epochs": 0.1,
                                                                        "train.gradient_checkpointing": True})
    assert main(["train", *cli_overrides(overrides)]) == 0
    assert seen["args"] is True


def test_kept_checkpoints_rebuild_the_final_model(tiny_model_dir, tmp_path):
    """train.keep_checkpoints leaves each epoch's adapter in RUN/checkpoints; scripts/epoch_curve.py merges
    one into the base as a model folder, and the last epoch's folder holds the run's own weights (with the run's
    lora.merge_scale applied to both)."""
    from safetensors.torch import load_file

    curve = load_script("epoch_curve")
    overrides = tiny_run_overrides(tiny_model_dir, tmp_path / "out", **{"train.epochs": 2, "train.keep_checkpoints": True,
                                                                        "lora.merge_scale": 1.5})
    assert main(["train", *cli_overrides(overrides)]) == 0
    run = tmp_path / "out" / "tiny"
    found = curve.checkpoints(run)
    assert [epoch for epoch, _ in found] == [1.0, 2.0]
    folder = curve.merged_folder(run, found[-1][1], tmp_path / "epoch-2")
    assert {p.name for p in folder.iterdir()} >= {"model.safetensors", "config.yaml", "chat_template.jinja", "dataset"}
    final, rebuilt = load_file(run / "model.safetensors"), load_file(folder / "model.safetensors")
    assert final.keys() == rebuilt.keys() and all(torch.allclose(final[k], rebuilt[k], atol=1e-6) for k in final)
    assert load_config(folder / "config.yaml").lora.merge_scale == 1.5
    first = load_file(curve.merged_folder(run, found[0][1], tmp_path / "epoch-1") / "model.safetensors")
    assert not all(torch.allclose(final[k], first[k], atol=1e-6) for k in final), "epoch 1 differs from the end"


def test_context_grouped_sampler_is_a_deterministic_permutation_per_epoch():
    from groundtune.train import ContextGroupedSampler

    lengths = [10 + (i * 37) % 90 for i in range(50)]  # 50 examples, one passage: 12 batches of 4 and one of 2
    sampler = ContextGroupedSampler(["p"] * 50, lengths, 4, seed=1)
    orders = []
    for epoch in range(2):
        sampler.set_epoch(epoch)
        orders.append(list(sampler))
        assert sorted(orders[-1]) == list(range(50)) and orders[-1] == list(sampler)
    assert orders[0] != orders[1], "each epoch its own order"
    batches = [orders[0][i:i + 4] for i in range(0, 48, 4)]
    spans = sorted((min(lengths[i] for i in b), max(lengths[i] for i in b)) for b in batches)
    assert all(hi <= next_lo for (_, hi), (next_lo, _) in zip(spans, spans[1:])), "batches of similar lengths"


def test_data_seed_sets_the_example_order_and_seed_the_lora_initialisation(tiny_model_dir, tokenizer, tmp_path):
    from groundtune.data import prepare_data
    from groundtune.model import load_model
    from groundtune.train import ContextGroupedSampler, GroundtuneTrainer, seeded_lora_model, training_arguments

    def order_and_init(seed, data_seed):
        cfg = load_config(None, tiny_run_overrides(tiny_model_dir, tmp_path) | {"seed": seed, "train.data_seed": data_seed})
        args = training_arguments(cfg, tmp_path / "checkpoints", "cpu", torch.float32)
        model = seeded_lora_model(load_model(str(tiny_model_dir), cfg.model, "cpu"), cfg)  # as training makes it
        trainer = GroundtuneTrainer(model=model, args=args, train_dataset=prepare_data(cfg.data, tokenizer).tokenized)
        sampler = trainer._get_train_sampler()
        assert isinstance(sampler, ContextGroupedSampler)
        lora_a = next(p for n, p in model.named_parameters() if "lora_A" in n).detach().clone()
        return list(sampler), lora_a

    order, init = order_and_init(1, None)
    same_order, other_init = order_and_init(2, 1)
    other_order, same_init = order_and_init(1, 2)
    assert order == same_order and order != other_order
    assert torch.equal(init, same_init) and not torch.equal(init, other_init)


def test_loraplus_ratio_gives_lora_b_the_faster_rate_through_the_trainer(tokenizer):
    """`train.loraplus_ratio` 4: every lora_B weight sits in a group at 4x the rate of the lora_A ones, the Trainer
    steps that optimizer (both groups follow its schedule), and off (0) leaves the Trainer its own optimizer."""
    import dataclasses

    import datasets
    from transformers import TrainingArguments

    from groundtune.config import RunConfig, TrainConfig
    from groundtune.train import GroundtuneTrainer, loraplus_optimizer

    assert loraplus_optimizer(_tiny_lora_model(tokenizer), RunConfig()) is None
    model = _tiny_lora_model(tokenizer)
    cfg = dataclasses.replace(RunConfig(), train=TrainConfig(learning_rate=1e-2, loraplus_ratio=4))
    opt = loraplus_optimizer(model, cfg)
    ids = {id(p): n for n, p in model.named_parameters()}
    rates = {}
    for group in opt.param_groups:
        for p in group["params"]:
            rates[ids[id(p)]] = group["lr"]
    assert set(rates) == {n for n, p in model.named_parameters() if p.requires_grad}
    assert all(lr == (4e-2 if "lora_B" in n else 1e-2) for n, lr in rates.items())
    args = TrainingArguments(output_dir="/tmp/unused", max_steps=2, per_device_train_batch_size=3, learning_rate=1e-2,
                             lr_scheduler_type="cosine_with_min_lr", lr_scheduler_kwargs={"min_lr_rate": 0.1},
                             report_to="none", use_cpu=True, save_strategy="no",
                             remove_unused_columns=False, disable_tqdm=True)
    trainer = GroundtuneTrainer(model=model, args=args, train_dataset=datasets.Dataset.from_list(examples(tokenizer)),
                                data_collator=PrefixSharingCollator(tokenizer.pad_token_id), optimizers=(opt, None))
    trainer.train()
    assert trainer.optimizer.optimizer is opt if hasattr(trainer.optimizer, "optimizer") else trainer.optimizer is opt
    lrs = sorted({g["lr"] for g in opt.param_groups if g["params"]})
    assert lrs == pytest.approx([1e-3, 4e-3])  # the schedule took both rates to its floor (0.1x) alike


@pytest.mark.parametrize("reuse", [False, True])
def test_length_power_weights_each_example_by_its_answer_length(tokenizer, reuse):
    """`train.length_power` 1: every example's loss is its mean token loss x the reference length (so examples
    count alike, long or short); the weighted sum equals that computed example by example, the plain way, with the
    prefix run per batch or reused from a batch with a longer shared prefix; power 0 adds no weights."""
    from groundtune.train import PrefixReuse, answer_length_weights

    model = build_tiny_model(tokenizer, seed=1).eval()
    feats = examples(tokenizer)
    assert "token_weights" not in PrefixSharingCollator(tokenizer.pad_token_id)(feats)
    collate = PrefixSharingCollator(tokenizer.pad_token_id, length_power=1.0, mean_answer_tokens=5.0)
    batch = collate(feats)
    assert batch["token_weights"].sum(dim=1).tolist() == pytest.approx([5.0] * len(feats))
    half = answer_length_weights(batch["shift_labels"], 0.5, 5.0)
    kinds = [{**f, "kind": k} for f, k in zip(feats, ["user", "passage", "user"])]
    user_plain = PrefixSharingCollator(tokenizer.pad_token_id, length_power=1.0, mean_answer_tokens=5.0,
                                       kind_powers={"user": 0.0})(kinds)
    labelled = (user_plain["shift_labels"] != IGNORE_INDEX).sum(dim=1).float()
    assert user_plain["token_weights"].sum(dim=1).tolist() == pytest.approx([labelled[0].item(), 5.0, labelled[2].item()])
    user_half = PrefixSharingCollator(tokenizer.pad_token_id, length_power=1.0, mean_answer_tokens=5.0,
                                      kind_powers={"user": 0.5})(kinds)
    assert user_half["token_weights"].sum(dim=1).tolist() == pytest.approx(
        [(5.0 * labelled[0].item()) ** 0.5, 5.0, (5.0 * labelled[2].item()) ** 0.5])
    n = (batch["shift_labels"] != IGNORE_INDEX).sum(dim=1)
    assert half.sum(dim=1).tolist() == pytest.approx((5.0 ** 0.5 * n ** 0.5).tolist())
    cache = None
    if reuse:  # a previous micro-batch of the step cached a longer prefix (the first example's question too)
        cache = PrefixReuse(grad=False)
        shared_prefix_loss(model, collate(feats[:1]), cache)
    with torch.no_grad():
        loss_sum, count = shared_prefix_loss(model, batch, cache)
    if reuse:
        assert cache.reused == 1
    ref = 0.0
    for f in feats:
        labels = torch.tensor([f["labels"]])
        ref += model(input_ids=torch.tensor([f["input_ids"]]), labels=labels).loss.item() * 5.0
    assert count.item() == n.sum().item()
    assert loss_sum.item() == pytest.approx(ref, rel=1e-5)


def test_length_power_and_loraplus_reach_the_training_run(tiny_model_dir, tmp_path, monkeypatch):
    """`--train.length_power 1` hands the collator its power and the data's mean answer length, and
    `--train.loraplus_ratio 4` hands the Trainer the LoRA+ optimizer; off (the default), neither is used."""
    import groundtune.train as train_module

    seen = {}
    collator_init, trainer_init = train_module.PrefixSharingCollator.__init__, train_module.GroundtuneTrainer.__init__

    def spy_collator(self, *args, **kwargs):
        collator_init(self, *args, **kwargs)
        seen["collator"] = (self.length_power, self.mean_answer_tokens, self.kind_powers)

    def spy_trainer(self, *args, optimizers=(None, None), **kwargs):
        seen["optimizer"] = optimizers[0]
        trainer_init(self, *args, optimizers=optimizers, **kwargs)

    monkeypatch.setattr(train_module.PrefixSharingCollator, "__init__", spy_collator)
    monkeypatch.setattr(train_module.GroundtuneTrainer, "__init__", spy_trainer)
    for name, extra in (("plain", {}), ("both", {"train.length_power": 1.0, "train.loraplus_ratio": 4.0,
                                                  "train.length_power_user": False})):
        overrides = tiny_run_overrides(tiny_model_dir, tmp_path / name, **extra)
        assert main(["train", *cli_overrides(overrides)]) == 0
        power, mean, powers = seen["collator"]
        if name == "plain":
            assert power == 0 and seen["optimizer"] is None and powers == {}
        else:
            assert power == 1.0 and 1 < mean < 300  # labelled tokens per example of the seed's chat data
            assert powers == {"user": 0.0}
            groups = [g for g in seen["optimizer"].param_groups if g["params"]]
            rates = sorted({g["initial_lr"] for g in groups})  # before the schedule (which ends at 0)
            assert len(rates) == 2 and rates[1] == pytest.approx(4 * rates[0])


def test_data_stats_count_the_labelled_tokens_of_each_kind(tiny_model_dir, tokenizer):
    """`groundtune data` says how the loss-carrying tokens split over the kinds of example (what length_power
    reweighs): the per-kind counts add up to the total and match the labels."""
    from groundtune.data import format_stats, prepare_data

    data = prepare_data(load_config(Path(__file__).parents[1] / "configs" / "smollm2-135m-cpu.yaml").data, tokenizer)
    by_kind = data.stats["answer_tokens_by_kind"]
    assert set(by_kind) == set(data.tokenized["kind"]) and sum(by_kind.values()) == data.stats["answer_tokens_total"]
    user = sum(sum(x != IGNORE_INDEX for x in lab) for lab, k in zip(data.tokenized["labels"], data.tokenized["kind"])
               if k == "user")
    assert by_kind["user"] == user > 0
    assert f"carry loss (abstain {by_kind['abstain']}, passage {by_kind['passage']}," in format_stats(data.stats)


def test_soup_of_runs_is_the_mean_of_their_merged_weights(tiny_model_dir, tmp_path):
    """scripts/soup.py: one run souped at its own merge scale is that run; two runs give the mean of their
    merged weights (base + the mean of the two updates), in a folder `groundtune eval` can load."""
    from safetensors.torch import load_file

    soup = load_script("soup")
    runs = []
    for seed in (1, 2):
        overrides = tiny_run_overrides(tiny_model_dir, tmp_path / f"out{seed}", seed=seed, **{"lora.merge_scale": 1.25})
        assert main(["train", *cli_overrides(overrides)]) == 0
        runs.append(tmp_path / f"out{seed}" / "tiny")
    one = load_file(soup.soup_folder(runs[:1], tmp_path / "one", 1.25) / "model.safetensors")
    own = load_file(runs[0] / "model.safetensors")
    assert one.keys() == own.keys() and all(torch.allclose(one[k], own[k], atol=1e-6) for k in own)
    two = load_file(soup.soup_folder(runs, tmp_path / "two", 1.25) / "model.safetensors")
    other = load_file(runs[1] / "model.safetensors")
    assert all(torch.allclose(two[k], (own[k] + other[k]) / 2, atol=1e-6) for k in own)
    assert not all(torch.allclose(own[k], other[k], atol=1e-6) for k in own), "the two seeds differ"
    assert load_config(tmp_path / "two" / "config.yaml").lora.merge_scale == 1.25
    assert (tmp_path / "two" / "chat_template.jinja").is_file()
