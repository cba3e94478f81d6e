"""Loading models and tokenizers, and turning task prompts into chat-formatted token ids.

Every model in the pipeline, tiny or real, is a Hugging Face directory written with
`save_pretrained` (safetensors), so one loader serves the base, every ES and GRPO checkpoint,
and the evaluation and analysis stages.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from esforget.core.dtype_names import DTYPE_NAMES

DTYPES = {name: getattr(torch, name) for name in DTYPE_NAMES}


def load_model(path: str | Path, dtype: str = "float32", device: str = "cpu") -> PreTrainedModel:
    if not (Path(path) / "config.json").exists():
        raise FileNotFoundError(f"not a model directory (no config.json): {path}")
    try:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=DTYPES[dtype])
    except (OSError, ValueError, RuntimeError, SafetensorError) as err:  # a damaged file names neither
        raise ValueError(f"{path}: cannot load the model: {_first_line(err)}") from None
    return model.to(device).eval()


def load_tokenizer(path: str | Path) -> PreTrainedTokenizerBase:
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError, RuntimeError) as err:
        raise ValueError(f"{path}: cannot load the tokenizer: {_first_line(err)}") from None
    if tokenizer.pad_token_id is None:  # many instruct models ship without a pad token
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _first_line(err: Exception) -> str:
    return f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}"


def chat_prompt_ids(tokenizer: PreTrainedTokenizerBase, prompts: list[str]) -> list[list[int]]:
    """Token ids of each prompt as a one-turn user message with the generation prompt added."""
    texts = [
        tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)
        for p in prompts
    ]
    return tokenizer(texts, add_special_tokens=False)["input_ids"]


def save_model(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    path: str | Path,
    dtype: str | None = None,
    master: dict[str, torch.Tensor] | None = None,
) -> None:
    """Write a complete HF directory atomically: readers never see a half-written checkpoint.

    `dtype` stores the weights rounded to that precision (the model itself is untouched), as
    VeRL's bf16 export of its fp32 master; `master` (name → fp32 tensor) is stored beside them
    in `master/model.safetensors`, for the weight analysis to compare before and after storage
    rounding (`esforget.analyze.weight_diff`)."""
    from safetensors.torch import save_file

    from esforget.core.checkpoints import MASTER_DIR
    from esforget.core.files import atomic_path, read_json, write_json

    with atomic_path(path, directory=True) as tmp:
        if dtype is None or DTYPES[dtype] == model.dtype:
            model.save_pretrained(tmp, safe_serialization=True)
        else:
            rounded, by_storage = {}, {}  # tied weights stay one tensor, which save_pretrained writes once
            for name, tensor in model.state_dict().items():
                rounded[name] = by_storage.setdefault(tensor.data_ptr(), tensor.detach().to(DTYPES[dtype]))
            model.save_pretrained(tmp, safe_serialization=True, state_dict=rounded)
            config = read_json(tmp / "config.json")  # save_pretrained records the model's own dtype
            write_json({**config, "dtype": dtype}, tmp / "config.json")
        tokenizer.save_pretrained(tmp)
        if master is not None:
            (tmp / MASTER_DIR).mkdir()
            save_file(
                {name: t.detach().float().cpu().contiguous() for name, t in master.items()},
                str(tmp / MASTER_DIR / "model.safetensors"),
            )


def has_native_bf16(device: str) -> bool:
    """Whether `device` multiplies bf16 matrices in hardware: a GPU that supports bf16, or a CPU
    with AVX512-BF16 or AMX instructions. Elsewhere PyTorch's CPU kernels emulate bf16, slower
    than fp32. (`torch.cpu`'s checks are private; no public function says this.)"""
    if torch.device(device).type == "cuda":
        return torch.cuda.is_bf16_supported()
    return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()


def device_name(device: str) -> str:
    """`device` with what it is: the GPU's name, or the CPU's model and the vector instructions
    PyTorch's CPU kernels use there (AVX2, AVX512, …): kernels for different instruction sets
    round differently, so the same run gives other numbers on another CPU."""
    if torch.device(device).type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            model = next(line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name"))
    except (OSError, StopIteration):
        import platform

        model = platform.processor() or platform.machine()
    return f"{device} ({model}, {torch.backends.cpu.get_cpu_capability()} kernels)"
