"""Weight-difference metrics on hand-made deltas with known answers."""

import math

import polars as pl
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import save_file

from esforget.analyze import weight_diff
from esforget.analyze.weight_diff import bucket, diff_checkpoint, diff_run, layer_index, summarise
from esforget.core.tensors import TensorFile
from tests.shared import save_pair

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
    many = {name: torch.zeros(2) for name in "cdefghi"}
    save_file(many, tmp_path / "b" / "model.safetensors")
    with pytest.raises(ValueError, match=r"hold different tensors, e\.g\. \['c', 'd', 'e', 'f', 'g'\]$"):
        diff_checkpoint(tmp_path / "a", tmp_path / "b", [1e-6])  # the first five of the eight names


QWEN = {  # Qwen2 names: q/k/v carry biases; saved in two shards as large models are
    "model.embed_tokens.weight": (8, 4),
    "model.layers.0.self_attn.q_proj.weight": (4, 4),
    "model.layers.0.self_attn.q_proj.bias": (4,),
    "model.layers.0.self_attn.k_proj.bias": (2,),
    "model.layers.1.mlp.down_proj.weight": (4, 6),
    "model.layers.1.input_layernorm.weight": (4,),
    "lm_head.weight": (8, 4),
}


def save_sharded(tensors: dict, folder):
    folder.mkdir()
    names = sorted(tensors)
    save_file({n: tensors[n] for n in names[:3]}, folder / "model-00001-of-00002.safetensors")
    save_file({n: tensors[n] for n in names[3:]}, folder / "model-00002-of-00002.safetensors")


def test_qwen_style_sharded_checkpoints_all_compared_in_one_pass(tmp_path):
    base = {name: torch.ones(shape) for name, shape in QWEN.items()}
    save_sharded(base, tmp_path / "base")
    checkpoints = []
    for step in (10, 20):
        tuned = {name: t.clone() for name, t in base.items()}
        tuned["model.layers.0.self_attn.q_proj.bias"][: step // 10] += 0.25  # step 10: 1 entry, step 20: 2
        tuned["model.layers.1.mlp.down_proj.weight"][0, 0] -= step  # one entry of 24
        save_sharded(tuned, tmp_path / f"step{step}")
        checkpoints.append((step, tmp_path / f"step{step}"))

    table = diff_run(tmp_path / "base", checkpoints, [1e-6])
    assert table.height == 2 * len(QWEN) and sorted(set(table["step"])) == [10, 20]
    row = {(r["step"], r["tensor"]): r for r in table.iter_rows(named=True)}
    bias = row[(20, "model.layers.0.self_attn.q_proj.bias")]
    assert (bias["bucket"], bias["layer"]) == ("Q", 0)
    assert bias["sparsity@1e-06"] == 2 / 4 and bias["fro_norm"] == pytest.approx((2 * 0.25**2) ** 0.5)
    assert bias["relative_norm"] == pytest.approx(bias["fro_norm"] / 2.0)  # ‖W‖ of four ones is 2
    assert row[(10, "model.layers.0.self_attn.q_proj.bias")]["sparsity@1e-06"] == 3 / 4
    down = row[(10, "model.layers.1.mlp.down_proj.weight")]
    assert (down["bucket"], down["layer"], down["max_abs"], down["sparsity@1e-06"]) == ("MLP", 1, 10.0, 23 / 24)
    assert row[(20, "lm_head.weight")]["fro_norm"] == 0.0 and row[(20, "lm_head.weight")]["bucket"] == "embedding"
    # one pass over the base gives exactly what comparing each checkpoint alone gives
    alone = diff_checkpoint(tmp_path / "base", tmp_path / "step20", [1e-6])
    assert table.filter(pl.col("step") == 20).drop("step").equals(alone)


def test_rank_of_each_matrix_update_as_a_share_of_full_rank(tmp_path):
    base = {"layers.0.mlp.up_proj.weight": torch.eye(6, 4), "layers.0.norm.weight": torch.zeros(4)}  # rank 4
    u, v = torch.arange(1.0, 7.0).unsqueeze(1), torch.tensor([[1.0, -1.0, 2.0, 0.5]])
    tuned = {"layers.0.mlp.up_proj.weight": torch.eye(6, 4) + u @ v, "layers.0.norm.weight": torch.ones(4)}
    for name, tensors in (("base", base), ("tuned", tuned)):
        (tmp_path / name).mkdir()
        save_file(tensors, tmp_path / name / "model.safetensors")
    row = {
        r["tensor"]: r
        for r in diff_checkpoint(tmp_path / "base", tmp_path / "tuned", [1e-6], rank=True).iter_rows(named=True)
    }
    assert row["layers.0.mlp.up_proj.weight"]["rank_percent"] == 25.0  # ΔW = uvᵀ: rank 1 of 4
    assert row["layers.0.norm.weight"]["rank_percent"] is None
    assert "rank_percent" not in diff_checkpoint(tmp_path / "base", tmp_path / "tuned", [1e-6]).columns


def test_reading_in_small_chunks_gives_the_same_numbers(tmp_path, monkeypatch):
    generator = torch.Generator().manual_seed(0)
    base = {
        "a": torch.randn(7, 3, generator=generator),
        "b": torch.randn(5, generator=generator),
        "c": torch.tensor(2.0),
        "d": torch.randn(2, 3, 4, generator=generator).to(torch.bfloat16),
    }
    tuned = {n: t + (torch.rand(t.shape, generator=generator) < 0.5).to(t.dtype) for n, t in base.items()}
    for name, tensors in (("base", base), ("tuned", tuned)):
        (tmp_path / name).mkdir()
        save_file(tensors, tmp_path / name / "model.safetensors")
    whole = diff_checkpoint(tmp_path / "base", tmp_path / "tuned", [1e-6])
    monkeypatch.setattr(weight_diff, "CHUNK_ENTRIES", 4)  # rows of 3 → chunks of one row
    chunked = diff_checkpoint(tmp_path / "base", tmp_path / "tuned", [1e-6])
    assert chunked["sparsity@1e-06"].to_list() == whole["sparsity@1e-06"].to_list()
    assert chunked["fro_norm"].to_list() == pytest.approx(whole["fro_norm"].to_list(), rel=1e-6)
    assert chunked["stored_dtype"].to_list() == ["float32", "float32", "float32", "bfloat16"]
    for name, tensor in tuned.items():  # the plain reader returns exactly what safetensors stored
        reader = TensorFile(tmp_path / "tuned" / "model.safetensors")
        rows = tensor.shape[0] if tensor.dim() else 1
        assert torch.equal(reader.rows(name, 0, rows), tensor)
        reader.close()


def test_a_kept_master_shows_what_storage_rounding_erased(tmp_path):
    """A weight at 1.0 moved by 1e-4 in the fp32 master rounds back to 1.0 in bf16 (its step
    there is 2⁻⁷): it counts as changed in the master and unchanged as stored — erased."""
    base = {"model.norm.weight": torch.ones(4)}
    master = {"model.norm.weight": torch.tensor([1.0, 1.0 + 1e-4, 1.0 + 1e-2, 1.0 - 1e-2])}
    stored = {"model.norm.weight": master["model.norm.weight"].to(torch.bfloat16)}
    for folder, tensors in (("base", base), ("ckpt", stored), ("ckpt/master", master)):
        (tmp_path / folder).mkdir(parents=True)
        save_file(tensors, tmp_path / folder / "model.safetensors")
    assert stored["model.norm.weight"].float().tolist() == [1.0, 1.0, 1.0078125, 0.98828125]

    row = diff_checkpoint(tmp_path / "base", tmp_path / "ckpt", [1e-6]).row(0, named=True)

    assert row["stored_dtype"] == "bfloat16"
    assert (row["sparsity@1e-06"], row["master_sparsity@1e-06"], row["erased@1e-06"]) == (0.5, 0.25, 0.25)
    assert row["master_fro_norm"] == pytest.approx((1e-8 + 2e-4) ** 0.5, rel=1e-3)
    assert row["fro_norm"] == pytest.approx((0.0078125**2 + 0.01171875**2) ** 0.5)
    whole = summarise(diff_checkpoint(tmp_path / "base", tmp_path / "ckpt", [1e-6]), [1e-6])
    assert (whole["erased@1e-06/overall"], whole["master_sparsity@1e-06/overall"]) == (0.25, 0.25)
    # without a master the columns are there, empty
    alone = diff_checkpoint(tmp_path / "base", tmp_path / "ckpt" / "master", [1e-6]).row(0, named=True)
    assert alone["master_fro_norm"] is None and alone["erased@1e-06"] is None
    table = diff_checkpoint(tmp_path / "base", tmp_path / "ckpt" / "master", [1e-6])
    assert {table.schema[c] for c in ("master_fro_norm", "master_sparsity@1e-06", "erased@1e-06")} == {pl.Float64}


def test_the_base_is_rounded_to_the_dtype_training_started_from(tmp_path):
    """An fp16 run of an fp32 base starts from the base rounded to fp16: a checkpoint that never
    moved is then unchanged everywhere, where against the fp32 base every entry would differ."""
    base = {"model.norm.weight": torch.tensor([0.1, 0.2, 0.3, 0.7])}
    untouched = {"model.norm.weight": base["model.norm.weight"].to(torch.float16)}
    for folder, tensors in (("base", base), ("ckpt", untouched)):
        (tmp_path / folder).mkdir()
        save_file(tensors, tmp_path / folder / "model.safetensors")
    as_trained = diff_checkpoint(tmp_path / "base", tmp_path / "ckpt", [1e-6], reference_dtype="float16").row(
        0, named=True
    )
    against_fp32 = diff_checkpoint(tmp_path / "base", tmp_path / "ckpt", [1e-6]).row(0, named=True)
    assert (as_trained["fro_norm"], as_trained["sparsity@1e-06"]) == (0.0, 1.0)
    assert against_fp32["sparsity@1e-06"] == 0.0


def test_a_change_of_exactly_tau_counts_as_unchanged_and_tau_zero_counts_only_exact_zeros(tmp_path):
    """The authors count |ΔW| ≤ τ as unchanged. Powers of two keep the differences exact."""
    base = {"w": torch.zeros(4)}
    tuned = {"w": torch.tensor([0.0, 2.0**-10, 2.0**-9, -(2.0**-10)])}
    row = diff_checkpoint(*save_pair(tmp_path, base, tuned), [0.0, 2.0**-10]).row(0, named=True)
    assert row["sparsity@0"] == 1 / 4  # τ = 0 (the schema allows it): only the untouched entry
    assert row[f"sparsity@{2.0**-10:g}"] == 3 / 4  # |ΔW| = τ, of either sign, is unchanged


def test_a_tensor_whose_base_is_zero_has_no_relative_norm(tmp_path):
    base = {"bias": torch.zeros(3), "w": torch.ones(3)}
    tuned = {"bias": torch.ones(3), "w": torch.full((3,), 2.0)}
    rows = {r["tensor"]: r for r in diff_checkpoint(*save_pair(tmp_path, base, tuned), [1e-6]).iter_rows(named=True)}
    assert math.isnan(rows["bias"]["relative_norm"])  # ‖ΔW‖ / ‖W‖ with ‖W‖ = 0: undefined, not inf or 0
    assert rows["w"]["relative_norm"] == pytest.approx(1.0)


TENSORS = st.integers(0, 3).flatmap(
    lambda dims: st.tuples(
        st.lists(st.integers(1, 5), min_size=dims, max_size=dims),
        st.sampled_from([torch.float32, torch.float16, torch.bfloat16]),
        st.integers(0, 2**31 - 1),
        st.integers(1, 40),
    )
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(TENSORS)
def test_streamed_chunks_give_what_a_dense_recomputation_gives(tmp_path_factory, case):
    """Any shape (0-d included), any stored dtype, any chunk size: the streamed, chunked
    reductions equal the same metrics computed densely on whole tensors in float64."""
    shape, dtype, seed, chunk = case
    generator = torch.Generator().manual_seed(seed)
    base = torch.randn(shape, generator=generator).to(dtype)
    moved = torch.rand(shape, generator=generator) < 0.5
    tuned = (base.float() + moved * torch.randn(shape, generator=generator)).to(dtype)
    folder = tmp_path_factory.mktemp("pair")
    save_pair(folder, {"layers.1.mlp.w": base}, {"layers.1.mlp.w": tuned})
    taus = [0.0, 1e-3, 0.5]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(weight_diff, "CHUNK_ENTRIES", chunk)
        row = diff_checkpoint(folder / "base", folder / "tuned", taus).row(0, named=True)

    delta = tuned.double() - base.double()
    assert row["numel"] == delta.numel()
    assert row["fro_norm"] == pytest.approx(float(delta.norm()), rel=1e-5, abs=1e-12)
    assert row["max_abs"] == pytest.approx(float(delta.abs().max()) if delta.numel() else 0.0, rel=1e-6)
    base_norm = float(base.double().norm())
    assert row["relative_norm"] == pytest.approx(float(delta.norm()) / base_norm, rel=1e-5)
    for tau in taus:
        assert row[f"sparsity@{tau:g}"] == float((delta.abs() <= tau).double().mean())
    assert row["stored_dtype"] == str(dtype).removeprefix("torch.")


def test_the_erased_share_of_a_one_entry_tensor_is_that_entry(tmp_path):
    """A scalar parameter (a learned temperature, say) moved in the master and rounded back as
    stored is 100 % erased, not half."""
    base = {"model.scale": torch.ones(1)}
    master = {"model.scale": torch.tensor([1.0 + 1e-4])}
    for folder, tensors in (
        ("base", base),
        ("ckpt", {"model.scale": master["model.scale"].to(torch.bfloat16)}),
        ("ckpt/master", master),
    ):
        (tmp_path / folder).mkdir(parents=True)
        save_file(tensors, tmp_path / folder / "model.safetensors")
    row = diff_checkpoint(tmp_path / "base", tmp_path / "ckpt", [1e-6]).row(0, named=True)
    assert (row["sparsity@1e-06"], row["master_sparsity@1e-06"], row["erased@1e-06"]) == (1.0, 0.0, 1.0)


def test_a_master_move_of_exactly_tau_is_unchanged_in_the_master_so_nothing_was_erased(tmp_path):
    """Erased: moved by more than τ in the master, by at most τ as stored. An entry the master
    moved by exactly τ counts as unchanged there too (|ΔW| ≤ τ): storage erased nothing of it."""
    tau = 2.0**-10
    base = {"w": torch.zeros(2)}
    master = {"w": torch.tensor([tau, 2 * tau])}
    for folder, tensors in (("base", base), ("ckpt", {"w": torch.zeros(2)}), ("ckpt/master", master)):
        (tmp_path / folder).mkdir(parents=True)
        save_file(tensors, tmp_path / folder / "model.safetensors")
    row = diff_checkpoint(tmp_path / "base", tmp_path / "ckpt", [tau]).row(0, named=True)
    assert (row[f"master_sparsity@{tau:g}"], row[f"erased@{tau:g}"]) == (0.5, 0.5)


def test_the_rank_counts_singular_values_above_a_hundred_thousandth_of_the_largest(tmp_path):
    """The authors' tolerance, rtol 1e-5: a direction moved a millionth as far as the largest
    is no change of rank; one moved a thousandth is. Ranks 1 and 2 of 4: 25 % and 50 %."""
    base = {"a.weight": torch.zeros(4, 4), "b.weight": torch.zeros(4, 4)}
    tuned = {
        "a.weight": torch.diag(torch.tensor([1.0, 1e-6, 0.0, 0.0])),
        "b.weight": torch.diag(torch.tensor([1.0, 1e-3, 0.0, 0.0])),
    }
    rows = {
        r["tensor"]: r["rank_percent"]
        for r in diff_checkpoint(*save_pair(tmp_path, base, tuned), [0.0], rank=True).iter_rows(named=True)
    }
    assert rows == {"a.weight": 25.0, "b.weight": 50.0}


def test_the_rank_is_of_the_update_from_the_base_as_training_saw_it(tmp_path):
    """An fp16 run that never moved: its ΔW against the base rounded to fp16 is zero, rank 0."""
    generator = torch.Generator().manual_seed(1)
    base = {"w.weight": torch.randn(4, 4, generator=generator)}
    untouched = {"w.weight": base["w.weight"].to(torch.float16)}
    row = diff_checkpoint(*save_pair(tmp_path, base, untouched), [0.0], rank=True, reference_dtype="float16").row(
        0, named=True
    )
    assert row["rank_percent"] == 0.0


def test_storage_erased_a_change_it_left_at_exactly_tau_and_counts_it_in_every_chunk(tmp_path, monkeypatch):
    """Stored |ΔW| = τ counts as unchanged (≤ τ), so a master move beyond τ stored at τ was
    erased; the count adds up over chunks of rows."""
    tau = 2.0**-10
    base = {"w": torch.zeros(4, 2)}
    master = {"w": torch.full((4, 2), 2 * tau)}
    stored = {"w": torch.tensor([[tau, tau], [0.0, 2 * tau], [tau, 0.0], [2 * tau, 2 * tau]])}
    for folder, tensors in (("base", base), ("ckpt", stored), ("ckpt/master", master)):
        (tmp_path / folder).mkdir(parents=True)
        save_file(tensors, tmp_path / folder / "model.safetensors")
    whole = diff_checkpoint(tmp_path / "base", tmp_path / "ckpt", [tau]).row(0, named=True)
    monkeypatch.setattr(weight_diff, "CHUNK_ENTRIES", 2)  # rows of 2 → chunks of one row
    chunked = diff_checkpoint(tmp_path / "base", tmp_path / "ckpt", [tau]).row(0, named=True)
    assert whole[f"erased@{tau:g}"] == chunked[f"erased@{tau:g}"] == 5 / 8


def test_the_table_keeps_its_types_when_no_tensor_has_a_layer_or_a_matrix(tmp_path):
    """Layers and ranks are null for a norm weight outside the layers; the columns are typed
    all the same, so that tables of several runs stack."""
    table = diff_checkpoint(
        *save_pair(tmp_path, {"norm.weight": torch.zeros(3)}, {"norm.weight": torch.ones(3)}), [0.0], rank=True
    )
    assert (table["layer"].to_list(), table["rank_percent"].to_list()) == ([None], [None])
    assert (table.schema["layer"], table.schema["rank_percent"]) == (pl.Int64, pl.Float64)


def test_a_checkpoints_whole_update_adds_its_tensors_in_squares_as_stored_and_in_the_master():
    """‖ΔW‖_F over all parameters is the root of the summed squares of the tensors' norms, as
    stored and, where every tensor kept its master, in the master; the shares are weighted by
    the tensors' sizes."""
    table = pl.DataFrame(
        {
            "numel": [1, 3],
            "fro_norm": [3.0, 4.0],
            "base_norm": [12.0, 16.0],
            "master_fro_norm": [6.0, 8.0],
            "sparsity@0": [1.0, 0.0],
            "master_sparsity@0": [0.0, 0.0],
            "erased@0": [1.0, 0.0],
        }
    )
    whole = summarise(table, [0.0])
    assert (whole["fro_norm"], whole["master_fro_norm"], whole["relative_norm"]) == (5.0, 10.0, 0.25)
    assert (whole["sparsity@0/overall"], whole["sparsity@0/tensor_mean"], whole["erased@0/overall"]) == (
        0.25,
        0.5,
        0.25,
    )
    partly = summarise(table.with_columns(master_fro_norm=pl.Series([6.0, None])), [0.0])
    assert partly["master_fro_norm"] is None and partly["erased@0/overall"] is None  # one tensor without a master


def test_the_relative_norm_divides_by_the_whole_bases_norm(tmp_path):
    """‖ΔW‖_F / ‖W₀‖_F over all tensors, not a mean of per-tensor ratios: here 1 / 5, though
    the one tensor that moved started at zero (its own ratio is undefined)."""
    base = {"x.weight": torch.tensor([[3.0, 4.0]]), "y.weight": torch.zeros(1, 2)}
    tuned = {"x.weight": torch.tensor([[3.0, 4.0]]), "y.weight": torch.tensor([[0.6, 0.8]])}
    base_dir, tuned_dir = save_pair(tmp_path, base, tuned)
    table = diff_checkpoint(base_dir, tuned_dir, [1e-6])
    assert summarise(table, [1e-6])["relative_norm"] == pytest.approx(0.2)
    row = {r["tensor"]: r for r in table.iter_rows(named=True)}
    assert row["x.weight"]["base_norm"] == pytest.approx(5.0) and row["x.weight"]["relative_norm"] == 0.0
    assert math.isnan(row["y.weight"]["relative_norm"])


def test_the_cosine_to_another_runs_update_sums_the_tensors_dot_products(tmp_path):
    """ΔW = (1, 0 | 0, 1) and the other run's (1, 1 | 0, −1): dot 1 + (−1) = 0 over the model,
    though neither tensor alone is orthogonal; with y's dot 0 instead the cosine is 1 / (√2 · √3)."""
    base = {"x.weight": torch.zeros(1, 2), "y.weight": torch.ones(1, 2)}
    tuned = {"x.weight": torch.tensor([[1.0, 0.0]]), "y.weight": torch.tensor([[1.0, 2.0]])}
    other = {"x.weight": torch.tensor([[1.0, 1.0]]), "y.weight": torch.tensor([[1.0, 0.0]])}
    base_dir, tuned_dir = save_pair(tmp_path, base, tuned)
    (tmp_path / "other").mkdir()
    save_file(other, tmp_path / "other" / "model.safetensors")
    table = diff_checkpoint(base_dir, tuned_dir, [1e-6], compare_to=(tmp_path / "other", "float32"))
    row = {r["tensor"]: r for r in table.iter_rows(named=True)}
    assert (row["x.weight"]["dot_reference"], row["y.weight"]["dot_reference"]) == (1.0, -1.0)
    assert row["x.weight"]["reference_fro_norm"] == pytest.approx(math.sqrt(2))
    assert summarise(table, [1e-6])["cosine_reference"] == 0.0
    only_x = table.with_columns(dot_reference=pl.Series([1.0, 0.0]))  # as if y had not moved along it
    assert summarise(only_x, [1e-6])["cosine_reference"] == pytest.approx(1 / (math.sqrt(2) * math.sqrt(3)))
    assert "cosine_reference" not in summarise(diff_checkpoint(base_dir, tuned_dir, [1e-6]), [1e-6])
