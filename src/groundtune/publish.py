"""Publish stage: stage a run as a complete Hub repository, then upload it in one commit.

    groundtune publish --model outputs/latest --repo-id NAMESPACE/NAME [--merged] [--dataset] [--dry-run]

Entry point: `publish(cfg)`. First everything is written to a staging folder (`stage_model_repo`),
which `--dry-run` prints and stops at. Then `huggingface_hub` uploads it: `create_repo` and one
`upload_folder` commit. `--dataset` also pushes the chat dataset with `datasets.push_to_hub`.

The staged model repository:

    README.md                      the model card (rendered from model_card.md)
    adapter_model.safetensors      the LoRA adapter (or, with --merged, model.safetensors + config.json
    adapter_config.json            + generation_config.json); base_model_name_or_path is a Hub id
    tokenizer.json, tokenizer_config.json, chat_template.jinja   the tokenizer and grounded chat template
    groundtune/config.yaml, manifest.json, eval_report.json, loss.png, log_history.json   provenance
    groundtune/source_check.json   the source check's evidence (`SourceCheck.from_dir` on a download)
    groundtune/eval_report_<sets>.json   each --extra-reports file (`groundtune eval` on other question sets)

The token comes from HF_TOKEN or the saved login (`huggingface_hub.get_token`). It is handed to
`HfApi` and nowhere else: never written, logged or put in an error message (staged files are checked).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
from pathlib import Path

from groundtune.config import HUB_ID, PublishConfig
from groundtune.errors import GroundtuneError, redact

PROVENANCE = ("config.yaml", "manifest.json", "loss.png", "log_history.json", "source_check.json")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "special_tokens_map.json",
                   "vocab.json", "merges.txt")


# --------------------------------------------------------------------------------------------------
# Checks on the run folder


def check_run(path: str | Path) -> Path:
    """A finished groundtune run folder: the merged model, the adapter and the manifest."""
    run = Path(path)
    if not run.is_dir():
        raise GroundtuneError("run folder not found", run)
    if not (run / "manifest.json").is_file():
        raise GroundtuneError("not a groundtune run folder (no manifest.json); pass outputs/<run>", run)
    adapter = run / "adapter"
    if not (adapter / "adapter_config.json").is_file() or not (adapter / "adapter_model.safetensors").is_file():
        raise GroundtuneError("run folder has no LoRA adapter (adapter/adapter_config.json and "
                              "adapter/adapter_model.safetensors); was it written by `groundtune train`?", run)
    return run


def base_hub_id(run: Path, override: str | None) -> str:
    """The base model's Hub id for the card and adapter_config.json; a local path is never acceptable."""
    from groundtune.card import read_json

    if override:
        return override
    candidates = [read_json(run / "adapter" / "adapter_config.json").get("base_model_name_or_path"),
                  read_json(run / "manifest.json").get("base_model_hub_id")]
    for name in candidates:
        if name and HUB_ID.fullmatch(name) and not Path(name).exists():
            return name
    raise GroundtuneError("the base model has no Hugging Face Hub id (trained from a local folder?); "
                          "pass --base-hub-id NAMESPACE/NAME", run / "adapter" / "adapter_config.json")


def eval_report(run: Path, allow_no_eval: bool) -> dict | None:
    from groundtune.card import load_eval_report, require_eval_report

    if allow_no_eval:
        return load_eval_report(run)
    return require_eval_report(run, ", or pass --allow-no-eval to publish an unevaluated model (the card will say so)")


def extra_reports(run: Path, paths: list[str], report: dict | None) -> list[tuple[str, Path, dict]]:
    """(name in the repository's groundtune/ folder, file, report) for each --extra-reports file."""
    import re

    from groundtune.card import load_extra_report

    if paths and report is None:
        raise GroundtuneError("--extra-reports adds question sets to the run's own evaluation, and the run has "
                              "none; run `groundtune eval` first", run / "eval" / "report.json")
    out, shown = [], set(report["sets"]) if report else set()
    for path in map(Path, paths):
        extra = load_extra_report(path, run, report)
        again = sorted(shown & set(extra["sets"]))
        if again:
            raise GroundtuneError(f"question set {again[0]!r} is already in the card (the run's own report or an "
                                  f"earlier --extra-reports file); pass each set once", path)
        shown |= set(extra["sets"])
        out.append(("eval_report_" + re.sub(r"[^\w.-]", "_", "_".join(extra["sets"])) + ".json", path, extra))
    return out


# --------------------------------------------------------------------------------------------------
# Staging


def staging_folder(path: str | None) -> Path:
    if path is None:
        return Path(tempfile.mkdtemp(prefix="groundtune-publish-"))
    folder = Path(path)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise GroundtuneError("--staging-dir must be a new or empty folder", folder)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def dataset_repo_id(repo_id: str) -> str:
    return f"{repo_id}-data"


def stage_model_repo(run: Path, folder: Path, cfg: PublishConfig, base_id: str, report: dict | None,
                     extras: list[tuple[str, Path, dict]] = ()) -> Path:
    """Write the complete model repository into `folder` (which must not exist yet); `extras` (from
    `extra_reports`) add their question sets to the card and their reports to groundtune/."""
    from groundtune.card import render_model_card, with_extra_sets

    if cfg.merged:
        from groundtune.export import export_merged

        export_merged(run, folder, dtype=cfg.dtype)
    else:
        folder.mkdir(parents=True)
        shutil.copy2(run / "adapter" / "adapter_model.safetensors", folder)
        config = json.loads((run / "adapter" / "adapter_config.json").read_text(encoding="utf-8"))
        config["base_model_name_or_path"] = base_id
        (folder / "adapter_config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        for name in TOKENIZER_FILES:
            if (run / name).is_file():
                shutil.copy2(run / name, folder)
    extra = folder / "groundtune"
    extra.mkdir(exist_ok=True)  # a merged export already put source_check.json there
    for name in PROVENANCE:
        if (run / name).is_file():
            shutil.copy2(run / name, extra)
    if report is not None:
        (extra / "eval_report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n",
                                                encoding="utf-8")
    for name, _, more in extras:
        (extra / name).write_text(json.dumps(more, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    if extras:
        report = with_extra_sets(report, list(extras))
    card = render_model_card(run, repo_id=cfg.repo_id, base_id=base_id, merged=cfg.merged, report=report,
                             languages=cfg.language, license=cfg.license,
                             dataset_repo_id=dataset_repo_id(cfg.repo_id) if cfg.dataset else None, staged=folder)
    card.save(folder / "README.md")
    return folder


def stage_dataset_repo(run: Path, folder: Path, cfg: PublishConfig) -> Path:
    """The dataset card; the data itself is written by `push_to_hub` (parquet) at upload time."""
    from groundtune.card import card_license, read_json, render_dataset_card

    if not (run / "dataset").is_dir():
        raise GroundtuneError("--dataset: the run folder has no dataset/", run)
    folder.mkdir(parents=True)
    license = card_license(read_json(run / "manifest.json"), cfg.license)
    card = render_dataset_card(run, repo_id=dataset_repo_id(cfg.repo_id), model_repo_id=cfg.repo_id,
                               languages=cfg.language, license=license)
    card.save(folder / "README.md")
    return folder


def tree(folder: Path) -> str:
    """The staged files with their sizes, one per line."""
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    width = max((len(str(p.relative_to(folder))) for p in files), default=0)
    return "\n".join(f"  {str(p.relative_to(folder)):<{width}}  {_size(p.stat().st_size):>9}" for p in files)


def _size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000


# --------------------------------------------------------------------------------------------------
# Upload


def hub_token() -> str:
    """HF_TOKEN, else the token saved by `hf auth login`; an error if neither exists."""
    from huggingface_hub import get_token

    token = get_token()
    if not token:
        raise GroundtuneError("no Hugging Face token: set HF_TOKEN or run `hf auth login` (a write token)")
    return token


def check_no_token(folder: Path, token: str) -> None:
    """Refuse to upload a staged file that contains the token (belt and braces: nothing should write it)."""
    needle = token.encode()
    for path in folder.rglob("*"):
        if path.is_file() and needle in path.read_bytes():
            raise GroundtuneError("a staged file contains the Hub token; refusing to upload it", path)


def _transport_errors() -> tuple[type[BaseException], ...]:
    """Connection-level errors of the HTTP client huggingface_hub uses (httpx2 in 2.x, httpx in 1.x)."""
    import importlib

    errors: list[type[BaseException]] = [OSError]
    for name in ("httpx2", "httpx"):
        with contextlib.suppress(ImportError, AttributeError):
            errors.append(importlib.import_module(name).TransportError)
    return tuple(errors)


def _server_message(error) -> str:
    """The Hub's own explanation from an HfHubHTTPError, on one line."""
    response = getattr(error, "response", None)
    message = getattr(error, "server_message", None)
    if not message and response is not None:
        with contextlib.suppress(Exception):
            message = response.json().get("error")
    return " ".join(str(message or "").split())


@contextlib.contextmanager
def hub_errors(repo_id: str, token: str | None, repo_type: str = "model"):
    """Turn what huggingface_hub raises into one clear line, with the token scrubbed."""
    from huggingface_hub.errors import HfHubHTTPError

    def fail(message: str):
        text = redact(message)
        if token:
            text = text.replace(token, "<redacted>")
        return GroundtuneError(text)

    what = f"{repo_type} repo {repo_id}"
    try:
        yield
    except GroundtuneError:
        raise
    except HfHubHTTPError as e:
        status = e.response.status_code if e.response is not None else None
        server = _server_message(e)
        detail = f": {server}" if server else ""
        if status == 401:
            raise fail(f"the Hub rejected the token (401 Unauthorized){detail}; check HF_TOKEN or run "
                       f"`hf auth login`") from None
        if status == 403:
            raise fail(f"the token may not write to {what} (403 Forbidden){detail}; use a write token "
                       f"for that namespace") from None
        if status == 409:
            raise fail(f"{what} already exists (409 Conflict){detail}; pass --update to add a commit to it, "
                       f"or choose another --repo-id") from None
        if status == 400 and "README.md" in str(e):
            raise fail(f"the Hub rejected the card (400){detail}") from None
        raise fail(f"Hub request for {what} failed ({status}){detail}") from None
    except ValueError as e:
        if "Invalid metadata in README.md" in str(e):
            reasons = "; ".join(line.lstrip("- ").strip() for line in str(e).splitlines()[1:] if line.strip())
            raise fail(f"the Hub rejected the card metadata of {what}: {reasons or 'invalid YAML'}") from None
        raise
    except _transport_errors() as e:
        from huggingface_hub import constants

        raise fail(f"cannot reach the Hub at {constants.ENDPOINT} ({type(e).__name__}); check the network "
                   f"or HF_ENDPOINT") from None


def upload_model(folder: Path, cfg: PublishConfig, token: str, run_name: str) -> str:
    """`create_repo` + one `upload_folder` commit; returns the commit URL."""
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    with hub_errors(cfg.repo_id, token):
        api.create_repo(cfg.repo_id, private=cfg.private, exist_ok=cfg.update)
        commit = api.upload_folder(repo_id=cfg.repo_id, folder_path=folder,
                                   commit_message=f"groundtune: publish run {run_name}")
    return commit.commit_url


def upload_dataset(run: Path, folder: Path, cfg: PublishConfig, token: str) -> str:
    """Push the chat dataset (parquet, via `datasets`), then its card."""
    import datasets
    from huggingface_hub import DatasetCard, HfApi

    repo_id = dataset_repo_id(cfg.repo_id)
    ds = datasets.load_from_disk(str(run / "dataset"))
    with hub_errors(repo_id, token, "dataset"):
        HfApi(token=token).create_repo(repo_id, repo_type="dataset", private=cfg.private, exist_ok=cfg.update)
        ds.push_to_hub(repo_id, private=cfg.private, token=token, commit_message="groundtune: chat dataset")
        # push_to_hub wrote a card with the `dataset_info` metadata; keep that, and add ours.
        pushed = DatasetCard.load(repo_id, repo_type="dataset", token=token)
        card = DatasetCard((folder / "README.md").read_text(encoding="utf-8"))
        for key, value in pushed.data.to_dict().items():
            if key not in card.data.to_dict():
                card.data[key] = value
        card.push_to_hub(repo_id, token=token, commit_message="groundtune: dataset card")
    return repo_id


# --------------------------------------------------------------------------------------------------
# Entry point


def publish(cfg: PublishConfig) -> Path:
    """Stage the run as a Hub repository (and dataset repository); upload unless `dry_run`. Returns the staging folder."""
    run = check_run(cfg.model)
    report = eval_report(run, cfg.allow_no_eval)
    extras = extra_reports(run, cfg.extra_reports, report)
    base_id = base_hub_id(run, cfg.base_hub_id)
    staging = staging_folder(cfg.staging_dir)
    model_folder = stage_model_repo(run, staging / "model", cfg, base_id, report, extras)
    dataset_folder = stage_dataset_repo(run, staging / "dataset", cfg) if cfg.dataset else None

    print(f"[groundtune] staged {cfg.repo_id} in {model_folder}:\n{tree(model_folder)}", flush=True)
    if dataset_folder is not None:
        print(f"[groundtune] staged dataset {dataset_repo_id(cfg.repo_id)} in {dataset_folder}:\n"
              f"{tree(dataset_folder)}\n  (+ the data as parquet, written by datasets.push_to_hub)", flush=True)
    if cfg.dry_run:
        print("[groundtune] dry run: nothing uploaded", flush=True)
        return staging

    token = hub_token()
    check_no_token(staging, token)
    url = upload_model(model_folder, cfg, token, run.resolve().name)
    print(f"[groundtune] uploaded {cfg.repo_id} in one commit: {url}", flush=True)
    if dataset_folder is not None:
        upload_dataset(run, dataset_folder, cfg, token)
        print(f"[groundtune] pushed dataset {dataset_repo_id(cfg.repo_id)}", flush=True)
    return staging
