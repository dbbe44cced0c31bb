"""The benchmark's parts run end to end on the tiny model; the real numbers come from `make bench`."""

import json

import pytest

from groundtune import bench

from conftest import REPO


@pytest.fixture
def tiny_config(tmp_path, tiny_model_dir):
    path = tmp_path / "tiny.yaml"
    path.write_text(f"model:\n  base_model: {tiny_model_dir}\n  device: cpu\ndata:\n  path: {REPO / 'data/000_629302d99c87d0b4.txt'}\n")
    return str(path)


@pytest.mark.parametrize("variant", ["baseline", "groundtune"])
def test_train_part(variant, tiny_config):
    r = bench.part_train(variant, tiny_config, n=6, epochs=1)
    assert r["tokens"] > 0 and r["tokens_per_s"] > 0 and r["final_loss"] > 0 and r["peak_rss_mb"] > 0
    if variant == "groundtune":
        assert r["train_flops"] > 0 and r["achieved_gflops"] > 0


def test_generate_parts_check_identical_answers(tiny_run, monkeypatch):
    monkeypatch.chdir(REPO)
    for kind in ("eval", "decode"):
        r = bench.part_generate(kind, str(tiny_run / "tiny"), n=3, max_new_tokens=6)
        assert r["identical_answers"] == "3/3" and r["generated_tokens"] > 0


def test_markdown_table_reports_ratios():
    train = {"examples": 4, "epochs": 1, "tokens_per_s": 300.0, "batch_size": 8, "learning_rate": 1e-3,
             "final_loss": 1.0, "peak_rss_mb": 1500.0, "achieved_gflops": 30.0}
    r = {"train": {"groundtune": train, "groundtune-noshare": {**train, "tokens_per_s": 100.0},
                   "baseline": {**train, "tokens_per_s": 50.0, "batch_size": 1, "learning_rate": 2e-4}},
         "eval": {"questions": 3, "plain_tokens_per_s": 10.0, "ours_tokens_per_s": 60.0, "speedup": 6.0,
                  "identical_answers": "3/3"},
         "decode": {"questions": 3, "plain_tokens_per_s": 10.0, "ours_tokens_per_s": 35.0, "speedup": 3.5,
                    "identical_answers": "3/3"},
         "peak": {"matmul_gflops": 120.0, "isa": "avx2", "threads": 2}}
    md = bench.markdown(r)
    assert "| 6.00x |" in md and "| 3.00x |" in md and "| 25% |" in md and "| 3.50x |" in md
    assert "off / on | 1.0 | 1.0 | | equal |" in md
    r["train"]["groundtune"]["prefix_gradient"] = False  # train.prefix_gradient false: a different gradient
    assert "| (not comparable) |" in bench.markdown(r) and "| equal |" not in bench.markdown(r)
    json.dumps(r)


def test_training_repeats_are_averaged_and_must_agree_on_the_loss():
    runs = [{"variant": "groundtune", "tokens_per_s": 300.0, "seconds": 10.0, "final_loss": 0.9, "peak_rss_mb": 2000.0,
             "train_flops": 10**12}, {"variant": "groundtune", "tokens_per_s": 400.0, "seconds": 7.5, "final_loss": 0.9,
                                      "peak_rss_mb": 2100.0, "train_flops": 10**12}]
    r = bench.combine(runs)
    assert r["tokens_per_s"] == 350.0 and r["tokens_per_s_runs"] == [300.0, 400.0] and r["peak_rss_mb"] == 2100.0
    assert r["achieved_gflops"] == round(10**12 / 8.75 / 1e9, 1)
    with pytest.raises(RuntimeError, match="different losses"):
        bench.combine([runs[0], {**runs[1], "final_loss": 0.8}])
