"""The `groundtune` command: parse arguments, call one stage's entry function, turn errors into one line.

    groundtune data   --config CFG [--out DIR]            build and check the chat dataset
    groundtune train  --config CFG [--resume] [--overwrite] LoRA-train; writes outputs/<run>/
    groundtune run    --config CFG [--resume] [--overwrite] train, then evaluate (what `make run` does)
    groundtune kfold  --config CFG [--folds K] [--out DIR]  train on all user pairs but every k-th; answer those
    groundtune seeds  --config CFG --seeds 42 43 44 [--out DIR] [--resume]   one recipe, several seeds: each and the mean
    groundtune ask    --model DIR ["question"]             answer one question, or chat interactively
    groundtune eval   --model DIR [--compare-base] [--questions FILE.jsonl] [--out DIR]   answer, score, report
    groundtune score  ROWS.jsonl [--source PASSAGE.txt] [--out FILE]   consistency of given answers
    groundtune audit  --config CFG [--data FILE]           claims in the reference answers the passage lacks
    groundtune calibrate --labels FILE --out weights.json  fit consistency on half the labels, report the other
    groundtune export --model DIR [--merged DIR] [--gguf FILE]   merged safetensors folder and/or GGUF file
    groundtune publish --model DIR --repo-id NS/NAME [--merged] [--dataset] [--dry-run]   Hugging Face Hub release

Any config key can be overridden with a dotted flag: `--train.epochs 2 --lora.r 8`.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from groundtune.config import PublishConfig, RunConfig, describe, field_docs, load_config
from groundtune.errors import GroundtuneError, redact


def _config_help() -> str:
    rows = describe(RunConfig)
    width = max(len(k) for k, _, _ in rows)
    lines = ["config keys (YAML, or override with --KEY VALUE):"]
    lines += [f"  {k:<{width}}  {doc} [default: {default}]" for k, default, doc in rows]
    return "\n".join(lines)


def _load(args, overrides: list[str]) -> RunConfig:
    return load_config(args.config, overrides)


def _no_overrides(extra: list[str]) -> None:
    if extra:
        raise GroundtuneError(f"unexpected argument(s): {' '.join(extra)}")


# --------------------------------------------------------------------------------------------------
# Commands


def cmd_data(args, extra) -> int:
    from groundtune import model as models
    from groundtune.data import format_stats, prepare_data

    cfg = _load(args, extra)
    tokenizer = models.load_tokenizer(models.resolve(cfg.model.base_model).path)
    if args.out and Path(args.out).exists() and not args.overwrite:
        raise GroundtuneError("already exists; pass --overwrite to replace it", args.out)
    print(format_stats(prepare_data(cfg.data, tokenizer, save_to=args.out).stats))
    if args.out:
        print(f"dataset saved to {args.out}")
    return 0


def cmd_train(args, extra) -> int:
    from groundtune.train import train

    train(_load(args, extra), resume=args.resume, overwrite=args.overwrite)
    return 0


def cmd_run(args, extra) -> int:
    from groundtune.run import run

    run(_load(args, extra), resume=args.resume, overwrite=args.overwrite)
    return 0


def cmd_ablate(args, extra) -> int:
    from groundtune.ablate import ablate

    _no_overrides(extra)
    ablate(args.plan, args.out, overwrite=args.overwrite, only=args.rows)
    return 0


def cmd_kfold(args, extra) -> int:
    from groundtune.kfold import kfold

    kfold(_load(args, extra), args.folds, args.out, overwrite=args.overwrite, only=args.only)
    return 0


def cmd_seeds(args, extra) -> int:
    from groundtune.seeds import seeds

    recipe = " ".join([f"--config {args.config}"] * bool(args.config) + list(extra))
    seeds(_load(args, extra), args.seeds, args.out, overwrite=args.overwrite, keep_weights=args.keep_weights,
          recipe=recipe, resume=args.resume)
    return 0


def cmd_bench(args, extra) -> int:
    from groundtune.bench import run_bench

    _no_overrides(extra)
    run_bench(args.config, args.model, args.out, n_train=args.train_examples, epochs=args.epochs,
              n_eval=args.eval_questions, n_decode=args.decode_questions, skip_baseline=args.skip_baseline,
              train_repeats=args.train_repeats)
    return 0


def cmd_ask(args, extra) -> int:
    from groundtune.infer import ask

    _no_overrides(extra)
    ask(args.model, args.question, max_new_tokens=args.max_new_tokens, device=args.device,
        source_check=args.source_check)
    return 0


def cmd_eval(args, extra) -> int:
    from groundtune.config import load_config, load_run_config
    from groundtune.evaluation.harness import evaluate_model
    from groundtune.evaluation.report import headline
    from groundtune.infer import check_model_dir

    model = check_model_dir(args.model)
    saved = model / "config.yaml"
    flags = (("max_new_tokens", args.max_new_tokens), ("batch_size", args.batch_size), ("nli_model", args.nli_model))
    overrides = {**_dotted(extra), **{f"eval.{k}": v for k, v in flags if v is not None}}
    cfg = (load_run_config(saved, overrides) if saved.is_file() else load_config(None, overrides)).eval
    out = Path(args.out) if args.out else model / "eval"
    report = evaluate_model(model, out, cfg=cfg, compare_base=args.compare_base, base_model=args.base_model,
                            source_path=args.source, device=args.device, question_sets=args.questions)
    print(headline(report))
    print(f"report written to {out}")
    return 0


def _dotted(extra: list[str]) -> dict:
    """`--eval.batch_size 8` style overrides for the eval command (only eval.* keys)."""
    from groundtune.config import parse_overrides

    flat = parse_overrides(extra)
    bad = [k for k in flat if not k.startswith("eval.")]
    if bad:
        raise GroundtuneError(f"unexpected argument --{bad[0]} (eval takes eval.* overrides only)")
    return flat


def cmd_score(args, extra) -> int:
    from groundtune.evaluation.score import score_file

    _no_overrides(extra)
    score_file(args.rows, args.source, args.out, nli_model=args.nli_model)
    return 0


def cmd_audit(args, extra) -> int:
    from groundtune.evaluation.audit import audit

    overrides = list(extra)
    if args.data:
        overrides += ["--data.path", args.data]
    if args.source:
        overrides += ["--data.source_path", args.source]
    audit(_load(args, overrides).data)
    return 0


def cmd_calibrate(args, extra) -> int:
    from groundtune.evaluation.calibrate import calibrate

    _no_overrides(extra)
    calibrate(args.labels, args.out)
    if args.out:
        print(f"weights written to {args.out}")
    return 0


def cmd_export(args, extra) -> int:
    from groundtune.export import export_gguf, export_merged

    _no_overrides(extra)
    if not args.merged and not args.gguf:
        raise GroundtuneError("export: pass --merged DIR and/or --gguf FILE")
    if args.merged:
        export_merged(args.model, args.merged, dtype=args.dtype, overwrite=args.overwrite)
    if args.gguf:
        export_gguf(args.model, args.gguf, outtype=args.gguf_type, overwrite=args.overwrite)
    return 0


def cmd_publish(args, extra) -> int:
    from groundtune.publish import publish

    _no_overrides(extra)
    publish(config_from_flags(PublishConfig, args))
    return 0


# --------------------------------------------------------------------------------------------------
# Flags generated from a config dataclass (help text from its field docs)


def add_config_flags(parser: argparse.ArgumentParser, cls: type, required: tuple[str, ...] = ()) -> None:
    """One `--field-name` flag per field of `cls`: booleans are switches, lists take several values."""
    import dataclasses
    import typing

    docs, hints = field_docs(cls), typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        flag, tp = "--" + f.name.replace("_", "-"), hints[f.name]
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        help_ = docs.get(f.name, "") + ("" if f.name in required or tp is bool or default is None
                                        else f" [default: {default}]")
        if tp is bool:
            parser.add_argument(flag, dest=f.name, action="store_true", help=help_)
        elif typing.get_origin(tp) is list:
            parser.add_argument(flag, dest=f.name, nargs="+", default=default, help=help_)
        elif typing.get_origin(tp) is typing.Literal:
            parser.add_argument(flag, dest=f.name, choices=typing.get_args(tp), default=default, help=help_)
        else:
            parser.add_argument(flag, dest=f.name, default=default, required=f.name in required, help=help_)


def config_from_flags(cls: type, args):
    """Build `cls` from parsed flags; a failed check names the flag."""
    import dataclasses

    from groundtune.config import ConfigValueError

    try:
        return cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls)})
    except ConfigValueError as e:
        raise GroundtuneError(f"--{e.key.replace('_', '-')}: {e}") from None


# --------------------------------------------------------------------------------------------------
# Parser and main


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="groundtune", description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--debug", action="store_true", help="show Python tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)

    def with_config(name: str, help_: str, func):
        p = sub.add_parser(name, help=help_, description=help_, epilog=_config_help(),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        p.add_argument("--config", help="YAML config (configs/*.yaml); omitted: all defaults")
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show Python tracebacks")
        p.set_defaults(func=func)
        return p

    p = with_config("data", "build, validate and summarise the chat dataset", cmd_data)
    p.add_argument("--out", help="save the DatasetDict here (datasets.save_to_disk)")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    for name, help_, func in (("train", "LoRA-train the base model; writes OUTPUT/RUN and points OUTPUT/latest at it", cmd_train),
                              ("run", "train, then evaluate: the main job (make run)", cmd_run)):
        p = with_config(name, help_, func)
        p.add_argument("--resume", action="store_true", help="continue an interrupted run from its last checkpoint")
        p.add_argument("--overwrite", action="store_true", help="replace an existing run folder of the same name")

    p = sub.add_parser("ablate", help="train and evaluate one run per row of an ablation plan; tabulate the results")
    p.add_argument("--plan", default="configs/ablation/recipe.yaml", help="plan: a base config and rows of overrides")
    p.add_argument("--out", default="outputs/ablation", help="folder for the runs, ablation.json and ablation.md")
    p.add_argument("--overwrite", action="store_true", help="replace run folders left by an earlier ablation")
    p.add_argument("--rows", type=int, nargs="+", metavar="N",
                   help="run only these rows (1-based); the others keep their results if their config is unchanged")
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show Python tracebacks")
    p.set_defaults(func=cmd_ablate)

    p = with_config("kfold", "hold out each k-th user pair in turn: train on the rest, answer the held-out questions "
                             "(tuned and base); writes OUT/kfold.md", cmd_kfold)
    p.add_argument("--folds", type=int, default=3, help="number of folds (2 to the number of pairs) [default: 3]")
    p.add_argument("--out", default="outputs/kfold", help="folder for the fold runs, kfold.json and kfold.md")
    p.add_argument("--overwrite", action="store_true", help="replace fold run folders left by an earlier kfold")
    p.add_argument("--only", type=int, nargs="+", metavar="I",
                   help="run only these folds (1-based); the mean then covers these folds only")

    p = with_config("seeds", "train and evaluate one recipe once per seed (no base model); writes OUT/seeds.md with "
                             "each seed's numbers and the mean", cmd_seeds)
    p.add_argument("--seeds", type=int, nargs="+", required=True, metavar="S", help="seeds, e.g. 42 43 44")
    p.add_argument("--out", default="outputs/seeds", help="folder for the runs, seeds.json and seeds.md")
    p.add_argument("--overwrite", action="store_true", help="replace run folders left by an earlier series")
    p.add_argument("--resume", action="store_true",
                   help="go on with a stopped series: seeds already evaluated (same config) are read back, "
                        "one stopped at a checkpoint continues from it")
    p.add_argument("--keep-weights", action="store_true",
                   help="keep each run's merged model.safetensors (deleted by default; the adapter stays)")

    p = sub.add_parser("bench", help="measure training and generation speed against the usual setup (make bench)")
    p.add_argument("--config", default="configs/smollm2-135m-cpu.yaml", help="run config whose data and model to use")
    p.add_argument("--model", default="outputs/latest", help="trained model for the generation measurements")
    p.add_argument("--out", default="outputs/bench", help="folder for bench.json and bench.md")
    p.add_argument("--train-examples", type=int, default=24)
    p.add_argument("--epochs", type=float, default=2)
    p.add_argument("--eval-questions", type=int, default=48)
    p.add_argument("--decode-questions", type=int, default=16)
    p.add_argument("--skip-baseline", action="store_true", help="skip the slow batch-1 Trainer baseline")
    p.add_argument("--train-repeats", type=int, default=2, help="interleaved repeats of each training variant")
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show Python tracebacks")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("ask", help="answer a question with a trained model (interactive without one)")
    p.add_argument("--model", default="outputs/latest", help="run folder or model folder [default: outputs/latest]")
    p.add_argument("question", nargs="?", help="the question; omitted: interactive session")
    p.add_argument("--max-new-tokens", type=int, default=256)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    p.add_argument("--source-check", action=argparse.BooleanOptionalAction, default=None,
                   help="withhold an answer naming a number or name the passage and your answers lack, or answering a "
                        "question about a name they never mention (groundtune."
                        "source_check) [default: on where the folder holds its evidence, source_check.json or dataset/: a "
                        "groundtune run folder or a published one downloaded whole]")
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show Python tracebacks")
    p.set_defaults(func=cmd_ask)

    p = sub.add_parser("eval", help="answer question sets with a model (and its base), score them, write a report",
                       description="answer question sets with a model (and its base), score them, write "
                                   "report.json/md/html; eval.* config keys can be overridden (--eval.batch_size 8)")
    p.add_argument("--model", default="outputs/latest", help="run folder or model folder [default: outputs/latest]")
    p.add_argument("--out", help="report folder [default: MODEL/eval]")
    p.add_argument("--compare-base", action="store_true", help="also answer with the untuned base model, same prompt")
    p.add_argument("--questions", action="append", metavar="FILE.jsonl",
                   help="question set (repeatable; 'train' = the run's own pairs) [default: the run's eval.question_sets]")
    p.add_argument("--base-model", help="base model for --compare-base when MODEL is not a groundtune run")
    p.add_argument("--source", help="passage file when MODEL is not a single-passage groundtune run")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    p.add_argument("--max-new-tokens", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--nli-model", help="optional local NLI / fact-checking model folder (adds the signal nli)")
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show Python tracebacks")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("score", help="consistency of answers with their reference and source (JSONL in, JSONL out)")
    p.add_argument("rows", help='JSONL rows {"id", "answer", "reference", "question"?, "source"?}')
    p.add_argument("--source", help="passage file for rows without a source")
    p.add_argument("--out", help="write the scored rows here [default: stdout]")
    p.add_argument("--nli-model", help="optional local NLI / fact-checking model folder (adds the signal nli)")
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show Python tracebacks")
    p.set_defaults(func=cmd_score)

    p = with_config("audit", "list what the reference answers claim that the passage does not support", cmd_audit)
    p.add_argument("--data", help="Q&A file to audit instead of the config's data.path")
    p.add_argument("--source", help="passage file for rows without a source (data.source_path)")

    p = sub.add_parser("calibrate", help="fit consistency on half of a labelled set, report AUC on the other half")
    p.add_argument("--labels", default="tests/data/consistency_labels.jsonl", help="hand-labelled JSONL")
    p.add_argument("--out", help="write the fitted weights here (src/groundtune/evaluation/weights.json ships)")
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show Python tracebacks")
    p.set_defaults(func=cmd_calibrate)
    p = sub.add_parser("export", help="write the merged model as a safetensors folder and/or a GGUF file",
                       description="write the merged model as a safetensors folder and/or a GGUF file")
    p.add_argument("--model", default="outputs/latest", help="run folder or model folder [default: outputs/latest]")
    p.add_argument("--merged", metavar="DIR", help="folder for the merged model (safetensors, tokenizer, chat template)")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"],
                   help="weights dtype of --merged [default: float32]")
    p.add_argument("--gguf", metavar="FILE", help="GGUF file for llama.cpp and transformers (Llama architecture)")
    p.add_argument("--gguf-type", default="f16", choices=["f32", "f16", "q8_0"], help="GGUF weight type [default: f16]")
    p.add_argument("--overwrite", action="store_true", help="replace existing --merged / --gguf outputs")
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show Python tracebacks")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("publish", help="stage a run as a Hugging Face Hub repo with a model card and upload it",
                       description="stage a run as a Hugging Face Hub repo with a model card and upload it "
                                   "(token: HF_TOKEN or `hf auth login`)")
    add_config_flags(p, PublishConfig, required=("repo_id",))
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show Python tracebacks")
    p.set_defaults(func=cmd_publish)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    debug = args.debug or os.environ.get("GROUNDTUNE_DEBUG") == "1"
    try:
        return args.func(args, extra)
    except GroundtuneError as e:
        if debug:
            raise
        print(f"groundtune: error: {redact(str(e))}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("groundtune: interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        print("groundtune: error: out of memory (try a smaller train.batch_size or data.max_length)", file=sys.stderr)
        return 1
    except Exception as e:  # anything else is a bug or an environment problem: one line, details on --debug
        if debug:
            raise
        first = str(e).splitlines()[0] if str(e) else ""
        print(f"groundtune: error: {type(e).__name__}: {redact(first)} (rerun with --debug for the traceback)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
