"""Weight-difference metrics on hand-made deltas with known answers."""

import pytest
import torch
from safetensors.torch import save_file

from esforget.weight_diff import bucket, diff_checkpoint, layer_index, summarise

LLAMA = {
    "model.embed_tokens.weight": (8, 4),
    "model.layers.0.self_attn.q_proj.weight": (4, 4),
    "model.layers.0.self_attn.k_proj.weight": (4, 4),
    "model.layers.0.self_attn.v_proj.weight": (4, 4),
    "model.layers.0.self_attn.o_proj.weight": (4, 4),
    "model.layers.0.mlp.gate_proj.weight": (6, 4),
    "model.layers.0.input_layernorm.weight": (4,),
    "model.layers.1.post_attention_layernorm.weight": (4,),
    "model.norm.weight": (4,),
}


@pytest.mark.parametrize(
    "name, expected_bucket, expected_layer",
    [
        ("model.layers.3.self_attn.q_proj.weight", "Q", 3),
        ("model.layers.12.self_attn.k_proj.bias", "K", 12),  # Qwen2 has q/k/v biases
        ("model.layers.0.self_attn.v_proj.weight", "V", 0),
        ("model.layers.7.self_attn.o_proj.weight", "O", 7),
        ("model.layers.2.mlp.down_proj.weight", "MLP", 2),
        ("model.layers.2.mlp.up_proj.weight", "MLP", 2),
        ("model.layers.27.post_attention_layernorm.weight", "LayerNorm", 27),
        ("model.norm.weight", "LayerNorm", None),
        ("model.embed_tokens.weight", "embedding", None),
        ("lm_head.weight", "embedding", None),
        ("model.rotary_emb.inv_freq", "other", None),
    ],
)
def test_llama_and_qwen_names_map_to_the_authors_buckets(name, expected_bucket, expected_layer):
    assert bucket(name) == expected_bucket
    assert layer_index(name) == expected_layer


def test_known_deltas_give_exact_norms_and_sparsity(tmp_path):
    base = {name: torch.zeros(shape) for name, shape in LLAMA.items()}
    tuned = {name: t.clone() for name, t in base.items()}
    tuned["model.layers.0.self_attn.q_proj.weight"][0, :] = torch.tensor([3.0, 4.0, 0.0, 0.0])  # 2 of 16 change
    tuned["model.layers.0.self_attn.v_proj.weight"] += 1e-7  # below τ=1e-6: "unchanged"
    tuned["model.norm.weight"] += 0.5  # every entry changes
    save_file(base, tmp_path / "base.safetensors")
    (tmp_path / "tuned").mkdir()
    save_file(tuned, tmp_path / "tuned" / "model.safetensors")
    (tmp_path / "base").mkdir()
    (tmp_path / "base.safetensors").rename(tmp_path / "base" / "model.safetensors")

    table = diff_checkpoint(tmp_path / "base", tmp_path / "tuned", [1e-6, 3.5])
    row = {r["tensor"]: r for r in table.iter_rows(named=True)}

    q = row["model.layers.0.self_attn.q_proj.weight"]
    assert q["fro_norm"] == pytest.approx(5.0) and q["max_abs"] == pytest.approx(4.0)
    assert q["sparsity@1e-06"] == 14 / 16 and q["sparsity@3.5"] == 15 / 16
    assert q["layer"] == 0 and q["bucket"] == "Q" and q["stored_dtype"] == "float32"
    assert row["model.layers.0.self_attn.v_proj.weight"]["sparsity@1e-06"] == 1.0
    assert row["model.norm.weight"]["sparsity@1e-06"] == 0.0
    assert row["model.norm.weight"]["fro_norm"] == pytest.approx(1.0)  # sqrt(4 × 0.25)
    assert row["model.embed_tokens.weight"]["fro_norm"] == 0.0

    whole = summarise(table, [1e-6])
    assert whole["fro_norm"] == pytest.approx((25 + 16 * 1e-14 + 1.0) ** 0.5)
    total = sum(torch.Size(s).numel() for s in LLAMA.values())
    assert whole["sparsity@1e-06/overall"] == pytest.approx((total - 2 - 4) / total)
    expected_mean = (14 / 16 + 0.0 + 7 * 1.0) / 9  # mean of per-tensor sparsities
    assert whole["sparsity@1e-06/tensor_mean"] == pytest.approx(expected_mean)


def test_half_precision_checkpoints_are_compared_in_fp32_and_labelled(tmp_path):
    for name, value in (("base", 1.0), ("tuned", 1.0 + 2**-10)):
        (tmp_path / name).mkdir()
        save_file({"w": torch.full((4,), value, dtype=torch.float16)}, tmp_path / name / "model.safetensors")
    row = diff_checkpoint(tmp_path / "base", tmp_path / "tuned", [1e-6]).row(0, named=True)
    assert row["stored_dtype"] == "float16"
    assert row["max_abs"] == pytest.approx(2**-10) and row["sparsity@1e-06"] == 0.0


def test_mismatched_checkpoints_fail_with_the_tensor_name(tmp_path):
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    save_file({"w": torch.zeros(2)}, tmp_path / "a" / "model.safetensors")
    save_file({"v": torch.zeros(2)}, tmp_path / "b" / "model.safetensors")
    with pytest.raises(ValueError, match="'v'"):
        diff_checkpoint(tmp_path / "a", tmp_path / "b", [1e-6])
