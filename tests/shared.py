"""What several test modules share: the micro model's Countdown source and a pair of saved models."""

from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
"""The repository's root."""
FIXTURES = REPO / "tests" / "fixtures"
"""Small files in the original layout of public datasets (tests/fixtures/README.md)."""

MICRO_COUNTDOWN = {
    "kind": "countdown_generator",
    "count": 3,
    "number_range": [1, 9],
    "ops": ["+", "*"],
    "target_range": [1, 100],
    "prompt_style": "compact",
}
"""Countdown puzzles for the ES tests on the random micro model (its source config)."""


def save_pair(folder: Path, base: dict, tuned: dict) -> tuple[Path, Path]:
    """`folder/base` and `folder/tuned`, each a one-file safetensors model of the given tensors."""
    from safetensors.torch import save_file

    for name, tensors in (("base", base), ("tuned", tuned)):
        (folder / name).mkdir()
        save_file(tensors, folder / name / "model.safetensors")
    return folder / "base", folder / "tuned"


SHARPEN = 6.0
"""Factor on every weight but the norms' (see `sharp_model`)."""


def sharp_model(micro_model_dir):
    """The random micro Llama with its weights scaled up: at the default init scale its argmax
    hardly depends on anything but the last token, so masks and positions could be wrong
    unnoticed; scaled, every earlier token moves it."""
    from esforget.core.models import load_model

    model = load_model(micro_model_dir)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" not in name:
                p.mul_(SHARPEN)
    return model


def qwen_shaped_model():
    """A random two-layer Qwen2 (vocabulary 64): q/k/v biases and fewer key/value heads than
    query heads, as the paper's Qwen2.5, with a tied head; weights drawn sharp enough (0.3)
    that every earlier token moves the argmax."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" not in name:
                p.normal_(0, 0.3)
    return model
