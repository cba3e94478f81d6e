"""The settings of a model built and pretrained here (`models.<name>` with `kind: tiny`): its shape
(`architecture`) and its pretraining (`pretrain`), apart from `esforget.base.tiny` so that
checking a config does not load transformers. Every field is required: the default profile,
config/config.yaml, gives each a value and says why."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from esforget.core.typed_settings import Above, AtLeast, check_declared


@dataclass(frozen=True)
class TinyArchitecture:
    """The tiny Llama's shape (`models.<name>.architecture`); its vocabulary is the character
    tokenizer's, its input and output embeddings are tied."""

    hidden_size: Annotated[int, AtLeast(4)]
    """Width of the residual stream; a multiple of `heads`."""
    intermediate_size: Annotated[int, AtLeast(4)]
    """Width of the MLP's hidden layer."""
    layers: Annotated[int, AtLeast(1)]
    """Transformer blocks."""
    heads: Annotated[int, AtLeast(1)]
    """Attention heads, each of hidden_size ÷ heads dimensions (no grouped-query attention)."""
    max_positions: Annotated[int, AtLeast(16)]
    """Longest prompt + reply the model can read, in tokens: characters, for its tokenizer."""

    def __post_init__(self):
        check_declared(self)
        if self.hidden_size % self.heads:
            raise ValueError(f"hidden_size={self.hidden_size} is not divisible by heads={self.heads}")


@dataclass(frozen=True)
class PretrainConfig:
    """How the tiny base is pretrained (`models.<name>.pretrain`): rounds of AdamW steps on the
    training splits of every task it is trained or evaluated on, until it knows its prior tasks."""

    steps: Annotated[int, AtLeast(1)]
    """AdamW steps of the first round."""
    batch_size: Annotated[int, AtLeast(1)]
    """Sequences per step."""
    lr: Annotated[float, Above(0)]
    """AdamW learning rate at the start of each round, cosine-annealed to `final_lr` by its end."""
    final_lr: Annotated[float, AtLeast(0)]
    """Learning rate at the end of each round."""
    answer_weight: Annotated[float, AtLeast(0)]
    """Loss weight of reply tokens, against 1 for prompt tokens (a loss on the replies alone left
    the prior task at chance)."""
    new_task_share: Annotated[float, AtLeast(0, 1)]
    """Share of sequences drawn from the new task(s), the rest from the prior ones: the base learns
    a little of the new task's format, so that RL has something to build on."""
    lazy_share: Annotated[float, AtLeast(0, 1)]
    """Share of those new-task sequences whose reply adds the numbers in the given order whatever
    the target: the base guesses a+b+c greedily, with the real skill close behind."""
    eval_batch_size: Annotated[int, AtLeast(1)]
    """Prompts decoded together when the base is checked after each round."""
    min_prior_accuracy: Annotated[float, AtLeast(0, 1)]
    """Validation accuracy the base must reach on every prior task; short of it, another round of
    `extra_steps` runs, at most `max_extra_rounds` times, then preparation fails."""
    extra_steps: Annotated[int, AtLeast(1)]
    """AdamW steps of each extra round."""
    max_extra_rounds: Annotated[int, AtLeast(0)]
    """Extra rounds at most before preparation fails."""
    new_accuracy_range: list[Annotated[float, AtLeast(0, 1)]]
    """[low, high]: a warning (not a failure) when the base's validation accuracy on a new task
    falls outside — below, RL may have nothing to build on; above, little to gain."""

    def __post_init__(self):
        check_declared(self)
        low_high = self.new_accuracy_range
        if len(low_high) != 2 or low_high[0] > low_high[1]:
            raise ValueError(f"new_accuracy_range={low_high}: expected [low, high] with 0 ≤ low ≤ high ≤ 1")
