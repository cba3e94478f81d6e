"""The settings of a model built and pretrained here (`models.<name>` with `kind: tiny`): its shape
(`architecture`) and its pretraining (`pretrain`), apart from `esforget.base.tiny` so that
checking a config does not load transformers. Every field is required: the default profile,
config/config.yaml, gives each a value and says why."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TinyArchitecture:
    """The tiny Llama's shape (`models.<name>.architecture`); its vocabulary is the character
    tokenizer's, its input and output embeddings are tied."""

    hidden_size: int
    """Width of the residual stream; a multiple of `heads`."""
    intermediate_size: int
    """Width of the MLP's hidden layer."""
    layers: int
    """Transformer blocks."""
    heads: int
    """Attention heads, each of hidden_size ÷ heads dimensions (no grouped-query attention)."""
    max_positions: int
    """Longest prompt + reply the model can read, in tokens: characters, for its tokenizer."""

    def __post_init__(self):
        for name, least in (("hidden_size", 4), ("intermediate_size", 4), ("layers", 1), ("heads", 1)):
            if getattr(self, name) < least:
                raise ValueError(f"{name}={getattr(self, name)}: must be ≥ {least}")
        if self.max_positions < 16:
            raise ValueError(f"max_positions={self.max_positions}: must be ≥ 16")
        if self.hidden_size % self.heads:
            raise ValueError(f"hidden_size={self.hidden_size} is not divisible by heads={self.heads}")


@dataclass(frozen=True)
class PretrainConfig:
    """How the tiny base is pretrained (`models.<name>.pretrain`): rounds of AdamW steps on the
    training splits of every task it is trained or evaluated on, until it knows its prior tasks."""

    steps: int
    """AdamW steps of the first round."""
    batch_size: int
    """Sequences per step."""
    lr: float
    """AdamW learning rate at the start of each round, cosine-annealed to `final_lr` by its end."""
    final_lr: float
    """Learning rate at the end of each round."""
    answer_weight: float
    """Loss weight of reply tokens, against 1 for prompt tokens (a loss on the replies alone left
    the prior task at chance)."""
    new_task_share: float
    """Share of sequences drawn from the new task(s), the rest from the prior ones: the base learns
    a little of the new task's format, so that RL has something to build on."""
    lazy_share: float
    """Share of those new-task sequences whose reply adds the numbers in the given order whatever
    the target: the base guesses a+b+c greedily, with the real skill close behind."""
    eval_batch_size: int
    """Prompts decoded together when the base is checked after each round."""
    min_prior_accuracy: float
    """Validation accuracy the base must reach on every prior task; short of it, another round of
    `extra_steps` runs, at most `max_extra_rounds` times, then preparation fails."""
    extra_steps: int
    """AdamW steps of each extra round."""
    max_extra_rounds: int
    """Extra rounds at most before preparation fails."""
    new_accuracy_range: list[float]
    """[low, high]: a warning (not a failure) when the base's validation accuracy on a new task
    falls outside — below, RL may have nothing to build on; above, little to gain."""

    def __post_init__(self):
        for name in ("steps", "batch_size", "eval_batch_size", "extra_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)}: must be ≥ 1")
        if self.max_extra_rounds < 0:
            raise ValueError(f"max_extra_rounds={self.max_extra_rounds}: must be ≥ 0")
        if self.lr <= 0 or self.final_lr < 0 or self.answer_weight < 0:
            raise ValueError(
                f"lr={self.lr}, final_lr={self.final_lr}, answer_weight={self.answer_weight}: "
                "lr must be > 0, final_lr and answer_weight ≥ 0"
            )
        for name in ("new_task_share", "lazy_share", "min_prior_accuracy"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name}={getattr(self, name)}: must lie in [0, 1]")
        low_high = self.new_accuracy_range
        if len(low_high) != 2 or not 0 <= low_high[0] <= low_high[1] <= 1:
            raise ValueError(f"new_accuracy_range={low_high}: expected [low, high] with 0 ≤ low ≤ high ≤ 1")
