"""Export: merged safetensors folder and GGUF round trips (tiny model fast, the embedded 135M slow)."""

import json

import numpy as np
import pytest
import torch

from groundtune.cli import main
from groundtune.export import export_gguf, export_merged, llama_permute

PROMPT = [{"role": "user", "content": "Which systems did Germany decide to provide to Ukraine?"}]


def prompt_ids(tokenizer):
    text = tokenizer.apply_chat_template(PROMPT, tokenize=False, add_generation_prompt=True)
    return tokenizer(text, add_special_tokens=False, return_tensors="pt").input_ids


def logits_of(model, ids):
    with torch.no_grad():
        return model.eval()(ids).logits[0]


def test_llama_permute_is_what_transformers_undoes():
    from transformers.modeling_gguf_pytorch_utils import LlamaTensorProcessor

    w = np.arange(6 * 64 * 5, dtype=np.float32).reshape(6 * 64, 5)
    for heads in (6, 2):
        permuted = llama_permute(w, heads)
        assert not np.array_equal(permuted, w)
        back = LlamaTensorProcessor()._reverse_permute_weights(permuted, heads, heads)
        assert np.array_equal(back, w)


def test_merged_export_matches_base_plus_adapter(tiny_run_folder, tiny_model_dir, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer, pipeline

    out = export_merged(tiny_run_folder, tmp_path / "merged", dtype="float32")
    assert {"model.safetensors", "config.json", "generation_config.json", "tokenizer.json",
            "chat_template.jinja"} <= {p.name for p in out.iterdir()}
    tokenizer = AutoTokenizer.from_pretrained(out)
    ids = prompt_ids(tokenizer)
    merged = AutoModelForCausalLM.from_pretrained(out)
    adapted = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), tiny_run_folder / "adapter")
    assert torch.allclose(logits_of(merged, ids), logits_of(adapted, ids), atol=1e-4)
    # the folder stands alone: the chat template (with the passage) and greedy defaults travel with it
    pipe = pipeline("text-generation", model=str(out))
    assert "Mark Rutte" in pipe.tokenizer.apply_chat_template(PROMPT, tokenize=False)
    assert pipe.model.generation_config.do_sample is False
    from groundtune.source_check import SourceCheck  # and `groundtune ask` checks answers as on the run folder
    assert SourceCheck.from_dir(out) == SourceCheck.from_dir(tiny_run_folder)


def test_merged_export_in_bfloat16(tiny_run_folder, tmp_path):
    from safetensors import safe_open
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = export_merged(tiny_run_folder, tmp_path / "bf16", dtype="bfloat16")
    with safe_open(out / "model.safetensors", framework="pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.bfloat16}
    ids = prompt_ids(AutoTokenizer.from_pretrained(out))
    full = logits_of(AutoModelForCausalLM.from_pretrained(tiny_run_folder, dtype=torch.float32), ids)
    half = logits_of(AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32), ids)
    assert (full - half).abs().max() < 0.05 and not torch.equal(full, half)


def gguf_round_trip(model_dir, gguf_path, new_tokens: int = 0) -> dict:
    """How closely a GGUF file, loaded back by transformers, reproduces its source folder on one prompt."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src_tok = AutoTokenizer.from_pretrained(model_dir)
    gguf_tok = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    ids = prompt_ids(src_tok)
    src_model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    back_model = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name,
                                                      dtype=torch.float32).eval()
    src, back = logits_of(src_model, ids), logits_of(back_model, ids)
    top2 = src.topk(2, -1).values
    confident = (top2[:, 0] - top2[:, 1]) > 0.5  # positions where the source's choice is not a near tie
    agree = src.argmax(-1) == back.argmax(-1)
    p, q = src.log_softmax(-1), back.log_softmax(-1)
    stats = {"same_ids": torch.equal(prompt_ids(gguf_tok), ids), "same_template": gguf_tok.chat_template == src_tok.chat_template,
             "positions": ids.shape[1], "max_abs_diff": (src - back).abs().max().item(),
             "top1": agree.float().mean().item(), "top1_confident": agree[confident].float().mean().item(),
             "kl": (p.exp() * (p - q)).sum(-1).mean().item()}
    if new_tokens:
        with torch.no_grad():
            a, b = (m.generate(ids, max_new_tokens=new_tokens, do_sample=False) for m in (src_model, back_model))
        stats["same_greedy"] = torch.equal(a, b)
    return stats


# max |logit diff| allowed per GGUF type on the tiny model (logits of order 1); f32 must be exact.
TINY_TOLERANCE = {"f32": 1e-5, "f16": 5e-3, "q8_0": 5e-2}


@pytest.mark.parametrize("outtype", ["f32", "f16", "q8_0"])
def test_gguf_round_trip_tiny(tiny_run_folder, tmp_path, outtype):
    import gguf

    path = export_gguf(tiny_run_folder, tmp_path / f"tiny-{outtype}.gguf", outtype=outtype)
    stats = gguf_round_trip(tiny_run_folder, path)
    assert stats["same_ids"] and stats["same_template"]
    assert stats["max_abs_diff"] <= TINY_TOLERANCE[outtype], stats
    # The tiny random model's logits are near-ties everywhere (no top-2 margin above 0.5), so a small logit
    # error flips some argmaxes: q8_0 1 to 7 of 450 and f16 0 or 1 (1 once the default data gained factoid
    # questions), depending on the trained adapter. Those two compare the distributions instead (mean KL
    # measured 2e-7 for q8_0, under 1e-8 for f16); f32 must agree everywhere.
    if outtype == "f32":
        assert stats["top1"] == 1.0, stats
    else:
        assert stats["kl"] < {"f16": 1e-5, "q8_0": 1e-4}[outtype], stats
    reader = gguf.GGUFReader(path)
    types = {t.name: t.tensor_type.name for t in reader.tensors}
    assert types["blk.0.attn_norm.weight"] == "F32"
    assert types["blk.0.attn_q.weight"] == {"f32": "F32", "f16": "F16", "q8_0": "Q8_0"}[outtype]
    assert "output.weight" not in types, "tied embeddings are not written twice"


def test_export_cli(tiny_run_folder, tmp_path, capsys):
    assert main(["export", "--model", str(tiny_run_folder)]) == 2
    assert capsys.readouterr().err.strip() == "groundtune: error: export: pass --merged DIR and/or --gguf FILE"
    target = tmp_path / "exists.gguf"
    target.write_text("keep me")
    assert main(["export", "--model", str(tiny_run_folder), "--gguf", str(target)]) == 2
    assert capsys.readouterr().err.strip() == f"groundtune: error: {target}: already exists; pass --overwrite to replace it"
    assert target.read_text() == "keep me"
    assert main(["export", "--model", str(tiny_run_folder), "--gguf", str(target), "--gguf-type", "q8_0", "--overwrite"]) == 0
    assert target.stat().st_size > 1000 and not list(tmp_path.glob(".*tmp"))


@pytest.mark.slow
@pytest.mark.parametrize("outtype", ["f16", "q8_0"])
def test_gguf_round_trip_embedded_135m(tmp_path, outtype):
    """f16 matches closely; q8_0 moves logits more (measured: max 1.3 of logit std 7.9, mean KL 0.003) and may
    flip near-ties, so it is held to agreement where the top-2 margin exceeds 0.5, small KL, same greedy text."""
    from groundtune.model import resolve

    base = resolve("embedded:smollm2-135m-instruct")
    path = export_gguf(base.path, tmp_path / f"smollm2-{outtype}.gguf", outtype=outtype)
    stats = gguf_round_trip(base.path, path, new_tokens=16)
    print(json.dumps({"outtype": outtype, "size_mib": round(path.stat().st_size / 2**20, 1), **stats}))
    assert stats["same_ids"] and stats["same_template"] and stats["same_greedy"], stats
    assert stats["top1_confident"] == 1.0 and stats["kl"] < 0.01, stats
    if outtype == "f16":
        assert stats["max_abs_diff"] < 0.25 and stats["top1"] == 1.0, stats
