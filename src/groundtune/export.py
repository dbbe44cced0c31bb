"""Export stage: a run's merged model as a standalone safetensors folder, or as one GGUF file.

    groundtune export --model outputs/latest --merged DIR [--dtype bfloat16]
    groundtune export --model outputs/latest --gguf model.gguf [--gguf-type q8_0]

`export_merged` casts the run's merged weights (base + LoRA, written by `save_run`) to the chosen
dtype and saves them with the tokenizer, the grounded chat template and the generation config, so
`pipeline("text-generation", model=DIR)` needs nothing else (and the source check's evidence, under
groundtune/ as in a published repository, for `groundtune ask`).

`export_gguf` writes a llama.cpp-compatible GGUF file with the `gguf` package, the way llama.cpp's
`convert_hf_to_gguf.py` does for Llama-architecture models: tensor names from gguf's own name map,
q/k projection rows permuted into llama.cpp's rotary layout (transformers' GGUF loader undoes it),
1-D norms kept in float32, and the byte-level BPE tokenizer (tokens, types, merges, special ids) plus
the chat template stored as metadata. transformers loads it back with `from_pretrained(dir, gguf_file=...)`.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from groundtune.errors import GroundtuneError

DTYPES = ("float32", "bfloat16", "float16")
GGUF_TYPES = ("f32", "f16", "q8_0")


# --------------------------------------------------------------------------------------------------
# Merged safetensors folder


def export_merged(model_dir: str | Path, out_dir: str | Path, dtype: str = "float32", overwrite: bool = False) -> Path:
    """Save the run's merged model in `dtype` with tokenizer, chat template and generation config."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from groundtune.infer import check_model_dir

    if dtype not in DTYPES:
        raise GroundtuneError(f"--dtype must be one of {', '.join(DTYPES)}; got {dtype!r}")
    src = check_model_dir(model_dir)
    out = _check_target(Path(out_dir), overwrite)
    model = AutoModelForCausalLM.from_pretrained(src, dtype=getattr(torch, dtype), use_safetensors=True,
                                                 trust_remote_code=False)
    tokenizer = AutoTokenizer.from_pretrained(src, trust_remote_code=False)
    with _atomic_dir(out) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        copy_source_check(src, Path(tmp))
    print(f"[groundtune] merged model ({dtype}) written to {out}", flush=True)
    return out


def copy_source_check(src: Path, out: Path) -> None:
    """The source check's evidence, where a published repository keeps it (groundtune/source_check.json), so
    `groundtune ask` on the exported folder checks answers as it does on the run folder."""
    from groundtune.source_check import PLACES

    for place in PLACES:
        if (src / place).is_file():
            (out / "groundtune").mkdir(exist_ok=True)
            shutil.copy2(src / place, out / "groundtune" / Path(place).name)
            return


def _check_target(path: Path, overwrite: bool) -> Path:
    if path.exists() and not overwrite:
        raise GroundtuneError("already exists; pass --overwrite to replace it", path)
    return path


class _atomic_dir:
    """Write into a sibling temporary folder, then rename it into place (an old one is replaced)."""

    def __init__(self, target: Path):
        self.target = target

    def __enter__(self) -> Path:
        self.target.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.target.name}-", dir=self.target.parent))
        return self.tmp

    def __exit__(self, exc_type, *_):
        if exc_type is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            return False
        if self.target.is_dir():
            shutil.rmtree(self.target)
        elif self.target.exists():
            self.target.unlink()
        os.replace(self.tmp, self.target)
        return False


# --------------------------------------------------------------------------------------------------
# GGUF


def llama_permute(weights, n_head: int):
    """llama.cpp's row order for q/k projections (convert_hf_to_gguf.py `LlamaModel.permute`).

    HF rotates the two halves of each head; llama.cpp rotates interleaved pairs. transformers'
    `LlamaTensorProcessor._reverse_permute_weights` is the inverse (a test checks the pair).
    """
    dim = weights.shape[0] // n_head // 2
    return weights.reshape(n_head, 2, dim, *weights.shape[1:]).swapaxes(1, 2).reshape(weights.shape)


def gguf_tensors(state_dict: dict, config):
    """(GGUF name, float32 numpy array) for every weight of a Llama state dict, in llama.cpp's layout."""
    import gguf

    name_map = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, config.num_hidden_layers)
    for hf_name, tensor in state_dict.items():
        if hf_name == "lm_head.weight" and config.tie_word_embeddings:
            continue  # tied: llama.cpp reuses token_embd, and transformers ties it again when `output` is absent
        stem, _, suffix = hf_name.rpartition(".")
        gguf_name = name_map.get_name(stem)
        if gguf_name is None:
            raise GroundtuneError(f"GGUF export: no llama.cpp name for tensor {hf_name!r}")
        data = tensor.detach().float().cpu().numpy()
        if stem.endswith("self_attn.q_proj"):
            data = llama_permute(data, config.num_attention_heads)
        elif stem.endswith("self_attn.k_proj"):
            data = llama_permute(data, config.num_key_value_heads)
        yield f"{gguf_name}.{suffix}", data


def encode_tensor(data, outtype: str):
    """(array, GGML type) as llama.cpp stores it: 1-D tensors stay float32; q8_0 needs rows of 32."""
    import gguf
    import numpy as np

    Q = gguf.GGMLQuantizationType
    if data.ndim == 1 or outtype == "f32":
        return data.astype(np.float32), Q.F32
    if outtype == "q8_0" and data.shape[-1] % gguf.GGML_QUANT_SIZES[Q.Q8_0][0] == 0:
        return gguf.quants.quantize(data, Q.Q8_0), Q.Q8_0
    return data.astype(np.float16), Q.F16  # f16, or a q8_0 row length that does not split into blocks


def tokenizer_metadata(tokenizer, vocab_size: int) -> dict:
    """Tokens (by id), token types and merges of a byte-level BPE tokenizer, as llama.cpp's `gpt2` model."""
    import gguf

    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    model = spec.get("model", {})
    if model.get("type") != "BPE" or "ByteLevel" not in json.dumps(spec.get("pre_tokenizer")):
        raise GroundtuneError("GGUF export supports byte-level BPE tokenizers only (as in Llama 3, SmolLM, GPT-2)")
    by_id = {i: t for t, i in tokenizer.get_vocab().items()}
    added = {t.content: t for t in tokenizer.backend_tokenizer.get_added_tokens_decoder().values()}
    tokens, types = [], []
    for i in range(vocab_size):
        token = by_id.get(i)
        if token is None:  # the model's embedding has more rows than the tokenizer has tokens
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
        elif token in added:
            tokens.append(token)
            types.append(gguf.TokenType.CONTROL if added[token].special else gguf.TokenType.USER_DEFINED)
        else:
            tokens.append(token)
            types.append(gguf.TokenType.NORMAL)
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
    return {"tokens": tokens, "types": types, "merges": merges}


def _tokenizer_pre(hub_id: str | None) -> str:
    """llama.cpp's pre-tokenizer name (tokenizer.ggml.pre): SmolLM has its own; else plain GPT-2 splitting."""
    return "smollm" if hub_id and hub_id.startswith("HuggingFaceTB/SmolLM") else "gpt2"


def _rope_theta(config) -> float:
    rope = getattr(config, "rope_parameters", None) or {}
    if rope.get("rope_type", "default") != "default":
        raise GroundtuneError("GGUF export: rope scaling is not supported (plain rotary embeddings only)")
    return float(rope.get("rope_theta", getattr(config, "rope_theta", 10000.0)))


def write_gguf(model, tokenizer, path: Path, outtype: str, name: str, hub_id: str | None = None,
               license: str | None = None) -> None:
    """Write `model` (a LlamaForCausalLM) and its tokenizer to one GGUF file at `path`."""
    import gguf

    config = model.config
    if config.model_type != "llama":
        raise GroundtuneError(f"GGUF export supports Llama-architecture models only; this one is {config.model_type!r}")
    ftype = {"f32": gguf.LlamaFileType.ALL_F32, "f16": gguf.LlamaFileType.MOSTLY_F16,
             "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}[outtype]
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    vocab = tokenizer_metadata(tokenizer, config.vocab_size)

    writer = gguf.GGUFWriter(str(path), gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.LLAMA])
    writer.add_type(gguf.GGUFType.MODEL)
    writer.add_name(name)
    if license:
        writer.add_license(license)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_rope_freq_base(_rope_theta(config))
    writer.add_rope_dimension_count(head_dim)
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_vocab_size(config.vocab_size)
    writer.add_file_type(ftype)
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)

    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(_tokenizer_pre(hub_id))
    writer.add_token_list(vocab["tokens"])
    writer.add_token_types(vocab["types"])
    writer.add_token_merges(vocab["merges"])
    for token, add in (("bos", writer.add_bos_token_id), ("eos", writer.add_eos_token_id),
                       ("unk", writer.add_unk_token_id), ("pad", writer.add_pad_token_id)):
        token_id = getattr(tokenizer, f"{token}_token_id")
        if token_id is not None:
            add(token_id)
    writer.add_add_bos_token(bool(getattr(tokenizer, "add_bos_token", False)))
    if tokenizer.chat_template:
        writer.add_chat_template(tokenizer.chat_template)

    for tensor_name, data in gguf_tensors(model.state_dict(), config):
        encoded, qtype = encode_tensor(data, outtype)
        writer.add_tensor(tensor_name, encoded, raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def export_gguf(model_dir: str | Path, out_file: str | Path, outtype: str = "f16", overwrite: bool = False) -> Path:
    """Convert a run folder's merged model (or any Llama model folder) to a GGUF file."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from groundtune.infer import check_model_dir

    if outtype not in GGUF_TYPES:
        raise GroundtuneError(f"--gguf-type must be one of {', '.join(GGUF_TYPES)}; got {outtype!r}")
    src = check_model_dir(model_dir)
    out = _check_target(Path(out_file), overwrite)
    manifest = _manifest(src)
    model = AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32, use_safetensors=True,
                                                 trust_remote_code=False)
    tokenizer = AutoTokenizer.from_pretrained(src, trust_remote_code=False)
    name = manifest.get("config", {}).get("run_name") or src.resolve().name
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        write_gguf(model, tokenizer, tmp, outtype, name, manifest.get("base_model_hub_id"),
                   manifest.get("base_model_license"))
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    size_mb = out.stat().st_size / 2**20
    print(f"[groundtune] GGUF ({outtype}, {size_mb:.1f} MiB) written to {out}", flush=True)
    return out


def _manifest(folder: Path) -> dict:
    path = folder / "manifest.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
