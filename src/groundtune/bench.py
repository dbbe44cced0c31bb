"""`groundtune bench` / `make bench`: groundtune against the usual setup, side by side, on this machine.

Each measurement runs in its own subprocess (so peak memory and thread pools are its own) and prints
one JSON line; the parent collects them into `bench.json` and `bench.md`.

1. training: the tutorial setup (transformers Trainer + PEFT, batch 1, the model's own loss) against
   groundtune's (length-grouped batches, shared passage prefix, logits only where labels are), same
   LoRA config, same examples, same epochs; example tokens per second (mean of interleaved repeats),
   peak RSS, and the final loss of each, measured the same way afterwards (mean answer-token loss, eval mode);
2. evaluation: `Answerer.answer` as the harness calls it (batched, cached prefix, drafts for the last
   answers of a batch) against `model.generate` one prompt at a time, on the 48 dev questions;
3. interactive decoding: `Answerer.stream` (n-gram lookup drafting) against `model.generate`, batch 1,
   on the first 16 dev questions;
4. the fraction of the machine's peak FLOP/s groundtune training reaches (FLOPs counted by
   torch.utils.flop_counter over one epoch; peak = a large fp32 matmul measured on the spot).
Generation parts also check that the answers are identical to plain greedy decoding.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

BASELINE_LR = 2e-4  # the learning rate PEFT/TRL LoRA tutorials use at batch size 1


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _examples(config: str, n: int):
    """The first n examples of the configured dataset after a fixed shuffle, tokenized."""
    from groundtune import model as models
    from groundtune.config import load_config
    from groundtune.data import prepare_data

    cfg = load_config(config)
    base = models.resolve(cfg.model.base_model)
    tokenizer = models.load_tokenizer(base.path)
    tokenized = prepare_data(cfg.data, tokenizer).tokenized.shuffle(seed=0).select(range(n))
    return cfg, base, tokenizer, tokenized


def final_loss(model, tokenized, pad_token_id: int) -> float:
    """Mean answer-token loss over the examples, eval mode; the same measure for every variant."""
    from groundtune.train import PrefixSharingCollator, shared_prefix_loss

    model.eval()
    collate = PrefixSharingCollator(pad_token_id, share_prefix=True)
    total, count = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(tokenized), 8):
            loss_sum, n = shared_prefix_loss(model, collate([tokenized[j] for j in range(i, min(i + 8, len(tokenized)))]))
            total, count = total + loss_sum.item(), count + n.item()
    return total / count


def epoch_flops(model, tokenized, collate, batch_size: int, prefix_grad: bool = True) -> int:
    """Forward + backward matmul FLOPs of one pass over the examples in groundtune's batching (`prefix_grad`
    False: the shared prefix forward only, as `train.prefix_gradient: false` trains)."""
    from torch.utils.flop_counter import FlopCounterMode

    from groundtune.train import shared_prefix_loss

    order = sorted(range(len(tokenized)), key=lambda i: tokenized[i]["length"])
    counter = FlopCounterMode(display=False)
    with counter:
        for i in range(0, len(order), batch_size):
            loss_sum, n = shared_prefix_loss(model, collate([tokenized[j] for j in order[i:i + batch_size]]),
                                             prefix_grad=prefix_grad)
            (loss_sum / n).backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def part_train(variant: str, config: str, n: int, epochs: float) -> dict:
    """One training variant: 'baseline', 'groundtune' or 'groundtune-noshare'."""
    from transformers import DataCollatorForSeq2Seq, Trainer, TrainingArguments

    from groundtune import model as models
    from groundtune.train import GroundtuneTrainer, PrefixSharingCollator, seeded_lora_model, training_arguments

    cfg, base, tokenizer, tokenized = _examples(config, n)
    model = models.load_model(base.path, cfg.model, "cpu")
    peft_model = seeded_lora_model(model, cfg)
    out = Path(os.environ.get("TMPDIR", "/tmp")) / f"groundtune-bench-{os.getpid()}"
    if variant == "baseline":
        args = TrainingArguments(output_dir=str(out), num_train_epochs=epochs, per_device_train_batch_size=1,
                                 learning_rate=BASELINE_LR, lr_scheduler_type="linear", report_to="none",
                                 save_strategy="no", use_cpu=True, seed=cfg.seed, disable_tqdm=True,
                                 logging_steps=10, remove_unused_columns=True)
        trainer = Trainer(model=peft_model, args=args, train_dataset=tokenized.select_columns(["input_ids", "labels"]),
                          data_collator=DataCollatorForSeq2Seq(tokenizer, padding=True))
    else:
        cfg.train.epochs = epochs
        cfg.train.prefix_sharing = variant == "groundtune"
        args = training_arguments(cfg, out, "cpu", model.dtype)
        args.save_strategy, args.disable_tqdm = "no", True
        trainer = GroundtuneTrainer(model=peft_model, args=args, train_dataset=tokenized,
                                    data_collator=PrefixSharingCollator(tokenizer.pad_token_id, cfg.train.prefix_sharing),
                                    reuse_prefix=cfg.train.prefix_sharing and cfg.train.prefix_reuse,
                                    prefix_grad=cfg.train.prefix_gradient)
    t0 = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - t0
    peak_rss = _peak_rss_mb()  # loading + training; before the loss pass below
    tokens = sum(tokenized["length"]) * epochs
    result = {"variant": variant, "examples": n, "epochs": epochs, "seconds": round(seconds, 2),
              "tokens": int(tokens), "tokens_per_s": round(tokens / seconds, 1),
              "batch_size": 1 if variant == "baseline" else cfg.train.batch_size,
              "learning_rate": BASELINE_LR if variant == "baseline" else cfg.train.learning_rate,
              "final_loss": round(final_loss(peft_model, tokenized, tokenizer.pad_token_id), 4),
              "peak_rss_mb": round(peak_rss, 1),
              # no shared prefix (baseline, no-sharing): nothing to stop, the full gradient
              "prefix_gradient": variant != "groundtune" or cfg.train.prefix_gradient}
    if variant == "groundtune":
        peft_model.train()
        flops = epoch_flops(peft_model, tokenized, PrefixSharingCollator(tokenizer.pad_token_id), cfg.train.batch_size,
                            cfg.train.prefix_gradient)
        result["train_flops"] = int(flops * epochs)
        result["achieved_gflops"] = round(flops * epochs / seconds / 1e9, 1)
    return result


def part_peak() -> dict:
    """The machine's fp32 matmul throughput, measured (the reference for 'fraction of peak')."""
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    for _ in range(3):
        a @ b
    reps, t0 = 20, time.perf_counter()
    for _ in range(reps):
        a @ b
    seconds = time.perf_counter() - t0
    flags = Path("/proc/cpuinfo").read_text().split("flags")[1].split("\n")[0] if Path("/proc/cpuinfo").exists() else ""
    isa = "avx512f" if "avx512f" in flags else "avx2" if "avx2" in flags else "other"
    return {"matmul_gflops": round(2 * 2048 ** 3 * reps / seconds / 1e9, 1), "threads": torch.get_num_threads(),
            "cpus": os.cpu_count(), "isa": isa}


def _questions(n: int) -> list[str]:
    rows = [json.loads(line) for line in Path("data/dev.jsonl").read_text().splitlines() if line.strip()]
    return [r["question"] for r in rows[:n]]


def _plain_generate(answerer, question: str, max_new_tokens: int) -> tuple[str, int]:
    tok = answerer.tokenizer
    ids = torch.tensor([answerer.prompt_ids(question)])
    with torch.inference_mode():
        out = answerer.model.generate(ids, max_new_tokens=max_new_tokens, do_sample=False,
                                      eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    new = out[0, ids.shape[1]:]
    return tok.decode(new, skip_special_tokens=True).strip(), int(new.numel())


def part_generate(kind: str, model_dir: str, n: int, max_new_tokens: int) -> dict:
    """'eval': the harness's batched answers vs one-at-a-time generate; 'decode': streamed lookup vs plain
    generate. The machine's speed drifts, so 'eval' times groundtune before and after the plain pass and
    takes the mean, and 'decode' alternates plain and streamed per question."""
    from groundtune.config import EvalConfig
    from groundtune.infer import Answerer

    answerer = Answerer.from_dir(model_dir, device="cpu", max_new_tokens=max_new_tokens)
    questions = _questions(n)
    answerer.prefix()  # built once per session, like an interactive session or an eval run
    cfg = EvalConfig()
    plain, plain_s, ours_s = [], 0.0, 0.0
    if kind == "eval":
        def batched() -> tuple[list[str], float]:
            t0 = time.perf_counter()
            got = answerer.answer(questions, batch_size=cfg.batch_size, draft_budget=cfg.draft_budget)
            return got, time.perf_counter() - t0

        ours, before = batched()
        t0 = time.perf_counter()
        plain = [_plain_generate(answerer, q, max_new_tokens) for q in questions]
        plain_s = time.perf_counter() - t0
        again, after = batched()
        assert again == ours
        ours_s = (before + after) / 2
    else:
        ours = []
        for q in questions:
            t0 = time.perf_counter()
            plain.append(_plain_generate(answerer, q, max_new_tokens))
            t1 = time.perf_counter()
            ours.append(answerer.stream(q, write=lambda _: None))
            plain_s, ours_s = plain_s + t1 - t0, ours_s + time.perf_counter() - t1
    tokens = sum(k for _, k in plain)
    same = sum(a == p for a, (p, _) in zip(ours, plain))
    result = {"part": kind, "questions": len(questions), "generated_tokens": tokens, "plain_s": round(plain_s, 2),
              "ours_s": round(ours_s, 2), "plain_tokens_per_s": round(tokens / plain_s, 1),
              "ours_tokens_per_s": round(tokens / ours_s, 1), "speedup": round(plain_s / ours_s, 2),
              "identical_answers": f"{same}/{len(questions)}"}
    if kind == "eval":
        result.update(batch_size=cfg.batch_size, draft_budget=cfg.draft_budget)
    return result


# --------------------------------------------------------------------------------------------------
# Orchestration


def _subprocess(args: list[str]) -> dict:
    cmd = [sys.executable, "-m", "groundtune.bench", *args]
    print(f"[bench] {' '.join(args)}", flush=True)
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "TQDM_DISABLE": "1"})
    if proc.returncode != 0:
        raise RuntimeError(f"bench part {args[0]} failed:\n{proc.stderr[-2000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"[bench]   {result}", flush=True)
    return result


def run_bench(config: str, model_dir: str, out_dir: str, n_train: int = 24, epochs: float = 2,
              n_eval: int = 48, n_decode: int = 16, skip_baseline: bool = False, train_repeats: int = 2) -> dict:
    from groundtune.runs import environment, write_json

    if not (Path(model_dir) / "config.json").is_file():
        from groundtune.errors import GroundtuneError

        raise GroundtuneError("no trained model to benchmark generation on; run `make run` first", model_dir)
    results: dict = {"environment": environment(), "peak": _subprocess(["peak"]), "gpu": gpu_note()}
    variants = ["groundtune", "groundtune-noshare"] + ([] if skip_baseline else ["baseline"])
    runs = {v: [] for v in variants}
    for _ in range(train_repeats):  # interleaved, so a change in the machine's speed hits every variant alike
        for v in variants:
            runs[v].append(_subprocess(["train", v, config, str(n_train), str(epochs)]))
    results["train"] = {v: combine(rs) for v, rs in runs.items()}
    results["eval"] = _subprocess(["generate", "eval", model_dir, str(n_eval), "96"])
    results["decode"] = _subprocess(["generate", "decode", model_dir, str(n_decode), "96"])
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "bench.json", results)
    (out / "bench.md").write_text(markdown(results), encoding="utf-8")
    print(markdown(results))
    return results


def combine(runs: list[dict]) -> dict:
    """One training variant's repeats: mean tokens/s (each run's kept in `tokens_per_s_runs`), the highest
    peak RSS; the loss is the same in every repeat (same seed), and is checked to be."""
    if len({r["final_loss"] for r in runs}) != 1:
        raise RuntimeError(f"repeats of {runs[0]['variant']} ended at different losses: {[r['final_loss'] for r in runs]}")
    out = dict(runs[-1])
    out["tokens_per_s_runs"] = [r["tokens_per_s"] for r in runs]
    out["tokens_per_s"] = round(sum(out["tokens_per_s_runs"]) / len(runs), 1)
    out["seconds"] = round(sum(r["seconds"] for r in runs) / len(runs), 2)
    out["peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs)
    if "train_flops" in out:
        out["achieved_gflops"] = round(out["train_flops"] / out["seconds"] / 1e9, 1)
    return out


def gpu_note() -> str:
    """The bench measures the CPU path; on a CUDA machine it says so rather than pretending to cover the GPU."""
    if torch.cuda.is_available():
        return (f"CUDA device present ({torch.cuda.get_device_name(0)}) but not benchmarked: the numbers above are "
                "CPU runs; time a GPU config with `groundtune run --config configs/qwen2.5-0.5b-gpu.yaml`")
    return "no CUDA device: the GPU configs (bf16, 4-bit) were not measured on this machine"


def markdown(r: dict) -> str:
    t = r["train"]
    ours = t["groundtune"]
    lines = ["| measurement | usual setup | groundtune | ratio | target |", "|---|---|---|---|---|"]
    if "baseline" in t:
        base = t["baseline"]
        lines.append(f"| training, example tokens/s ({ours['examples']} examples x {ours['epochs']} epochs; "
                     f"mean of {len(ours.get('tokens_per_s_runs', [0]))} interleaved runs) | "
                     f"{base['tokens_per_s']} (Trainer+PEFT, batch 1, lr {base['learning_rate']}) | "
                     f"{ours['tokens_per_s']} (batch {ours['batch_size']}, lr {ours['learning_rate']}) | "
                     f"{ours['tokens_per_s'] / base['tokens_per_s']:.2f}x | >= 2x |")
        lines.append(f"| final loss (answer tokens, eval mode) | {base['final_loss']} | {ours['final_loss']} | | equal or lower |")
        lines.append(f"| training peak RSS (ru_maxrss; highest of the repeats) | {base['peak_rss_mb']:.0f} MiB | "
                     f"{ours['peak_rss_mb']:.0f} MiB | | <= 3 GB (3072 MiB if GiB, 2861 MiB if 10^9 bytes) |")
    noshare = t["groundtune-noshare"]
    lines.append(f"| prefix sharing alone (same batches), tokens/s | {noshare['tokens_per_s']} (off) | "
                 f"{ours['tokens_per_s']} (on) | {ours['tokens_per_s'] / noshare['tokens_per_s']:.2f}x | |")
    if ours.get("prefix_gradient", True):
        lines.append(f"| final loss, prefix sharing off / on | {noshare['final_loss']} | {ours['final_loss']} | | equal |")
    else:  # train.prefix_gradient false: "on" also skips the prefix's backward, a different gradient
        lines.append(f"| final loss, prefix sharing off (full gradient) / on (no gradient through the prefix) | "
                     f"{noshare['final_loss']} | {ours['final_loss']} | | (not comparable) |")
    for key, name, target in (("eval", "evaluation, generated tokens/s", ">= 5x"),
                              ("decode", "interactive decode, tokens/s (batch 1)", ">= 3x")):
        g = r[key]
        lines.append(f"| {name} ({g['questions']} dev questions) | {g['plain_tokens_per_s']} (generate, one at a time) | "
                     f"{g['ours_tokens_per_s']} | {g['speedup']:.2f}x | {target}; identical answers {g['identical_answers']} |")
    peak = r["peak"]
    lines.append(f"| training FLOP/s vs measured fp32 matmul peak | {peak['matmul_gflops']} GFLOP/s peak "
                 f"({peak['isa']}, {peak['threads']} threads) | {ours['achieved_gflops']} GFLOP/s | "
                 f"{ours['achieved_gflops'] / peak['matmul_gflops']:.0%} | |")
    if "gpu" in r:
        lines += ["", f"GPU: {r['gpu']}."]
    return "\n".join(lines) + "\n"


def _main(argv: list[str]) -> None:
    part = argv[0]
    if part == "peak":
        result = part_peak()
    elif part == "train":
        result = part_train(argv[1], argv[2], int(argv[3]), float(argv[4]))
    elif part == "generate":
        result = part_generate(argv[1], argv[2], int(argv[3]), int(argv[4]))
    else:
        raise SystemExit(f"unknown bench part {part}")
    print(json.dumps(result))


if __name__ == "__main__":
    _main(sys.argv[1:])
