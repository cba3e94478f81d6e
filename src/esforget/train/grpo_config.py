"""The hyper-parameters of one GRPO method (`config.methods.<name>` with `algorithm: grpo`), in
VeRL's vocabulary, apart from the trainer (`esforget.train.grpo`) that maps them onto TRL."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from esforget.core.dtype_names import DTYPE_NAMES
from esforget.core.typed_settings import Above, AtLeast, OneOf, check_declared

COMPUTE_DTYPES = ("auto", "bfloat16", "float32")
LOSS_TYPES = ("bnpo", "dapo", "grpo", "dr_grpo")
"""TRL's aggregations of the clipped PPO objective that `epsilon` and `dual_clip` describe."""


@dataclass
class GRPOMethodConfig:
    """Hyper-parameters of one GRPO method (`config.methods.<name>` with `algorithm: grpo`).
    Defaults are the authors' VeRL run (docs/study.md; their Countdown scripts) where TRL can express
    it; docs/grpo_mapping.md maps every field. Settings that differ per (model, task), as the
    authors' GSM8K scripts do, are set with `runs.overrides`."""

    epochs: Annotated[int, AtLeast(1)] = 500
    """Passes over the (length-filtered) training prompts, VeRL's `total_epochs` (the authors:
    500): rollouts = epochs × ⌊prompts ÷ prompts_per_rollout⌋. Ignored when `rollouts` is set."""
    rollouts: Annotated[int, AtLeast(1)] | None = None
    """Rollouts to train for (VeRL "steps"), instead of `epochs`."""
    prompts_per_rollout: Annotated[int, AtLeast(1)] = 200
    """Distinct prompts sampled per rollout, VeRL's `train_batch_size` (the authors: 200)."""
    prompts_per_minibatch: Annotated[int, AtLeast(1)] = 25
    """Prompts per optimizer step, VeRL's `ppo_mini_batch_size`; must divide
    `prompts_per_rollout`. The paper's 32 makes VeRL split 200 prompts into 6 × 32 + 8 (7 steps,
    the last one's gradient scaled by 8/32), which TRL cannot; 25 (8 equal steps: 4,000 updates
    over 500 rollouts against VeRL's 3,500) is the divisor nearest in update count."""
    num_generations: Annotated[int, AtLeast(2)] = 30
    """Sampled replies per prompt, the group of GRPO's advantage (the authors: 30)."""
    micro_batch_size: Annotated[int, AtLeast(1)] = 5
    """Sequences per forward/backward pass on one device, VeRL's
    `ppo_micro_batch_size_per_gpu`. With `loss_type: bnpo` it also decides the loss: tokens are
    averaged within each micro-batch, then micro-batches are averaged. The paper's 4 does not
    divide 25 × 30 = 750 sequences; 5 is the nearest that does (on 1, 2, 3, 5 or 6 devices)."""
    max_prompt_length: Annotated[int, AtLeast(1)] | None = 512
    """Prompts longer than this many tokens (chat template applied) are dropped before training,
    as VeRL's `filter_overlong_prompts`; the number dropped is logged. null keeps all.
    The authors' Countdown: 512."""
    learning_rate: Annotated[float, Above(0)] = 1e-6
    """Constant learning rate, no warm-up (the authors: 1e-6)."""
    weight_decay: Annotated[float, AtLeast(0)] = 0.01
    """AdamW weight decay (VeRL's actor default; the Trainer's own default is 0)."""
    decay_all_parameters: bool = True
    """Decay every parameter, as VeRL's AdamW does; False exempts biases and norm weights, the
    Hugging Face Trainer's convention."""
    beta: Annotated[float, AtLeast(0)] = 0.001
    """KL coefficient against the base model, k3 estimator (the authors: 0.001; 0 loads no
    reference model)."""
    epsilon: Annotated[float, Above(0, 1)] = 0.2
    """PPO clip range (the authors: 0.2)."""
    dual_clip: Annotated[float, Above(1)] | None = 3.0
    """Dual-clip bound c for negative advantages, VeRL's `clip_ratio_c` (default 3): the ratio
    of the unclipped term is capped at c (TRL's `delta`, equal to VeRL's dual clip). null: off."""
    loss_type: Annotated[str, OneOf(*LOSS_TYPES)] = "bnpo"
    """TRL loss aggregation. `bnpo` is VeRL's `token-mean` as its actor computes it: the mean
    over the tokens of each micro-batch, averaged over the micro-batches of the step; `dapo`
    normalises by the tokens of the whole mini-batch instead; `grpo` and `dr_grpo` are TRL's other
    aggregations of the same clipped objective (docs/grpo_mapping.md). TRL's `cispo`, `sapo`,
    `vespo` and `luspo` change the objective itself, which `epsilon` and `dual_clip` no longer
    describe: they are not offered."""
    temperature: Annotated[float, Above(0)] = 1.0
    """Rollout sampling temperature (the authors: 1.0); top-p 1 and top-k off, as in VeRL."""
    max_grad_norm: Annotated[float, Above(0)] = 1.0
    """Gradient clipping by global norm (VeRL's default)."""
    checkpoint_every: Annotated[int, AtLeast(1)] = 30
    """Save a checkpoint (and the resumable state) every k rollouts and at the end. The authors: 30."""
    checkpoint_dtype: Annotated[str, OneOf(*DTYPE_NAMES)] = "float32"
    """Precision the published checkpoints are stored in: training keeps an fp32 master either
    way, and the resumable state stays fp32. VeRL's HF checkpoints, which the authors' sparsity
    script read, are bf16 exports of its fp32 master: `bfloat16` stores what they stored."""
    save_master: bool = False
    """Also store the fp32 master beside each checkpoint (`<checkpoint>/master/`), so that the
    weight analysis can compare ΔW before and after storage rounding."""
    validate_every: Annotated[int, AtLeast(1)] = 10
    """Greedy validation accuracy every m rollouts. The authors: 10."""
    validation_size: Annotated[int, AtLeast(1)] | None = None
    """Validation items scored each time; null = the whole split."""
    validation_batch_size: Annotated[int, AtLeast(1)] = 64
    """Prompts decoded together in greedy validation."""
    gradient_checkpointing: bool = True
    """Recompute activations in the backward pass instead of keeping them (TRL's default, which
    every profile used before this setting existed): the same gradients for one more forward
    pass. Off where memory is plenty, e.g. a 135 M-parameter model on a CPU."""
    compute_dtype: Annotated[str, OneOf(*COMPUTE_DTYPES)] = "auto"
    """Precision of the forward and backward passes (TRL's `bf16`: matmuls autocast to bf16; the
    fp32 master, the optimizer and the loss stay fp32 either way). `auto`: bf16 on a GPU that has
    it (TRL's default; VeRL's mixed precision), fp32 on a CPU. `bfloat16`: bf16 also on a CPU
    whose cores multiply bf16 natively (AVX512-BF16 or AMX, detected at run time), fp32 on one
    that would emulate it (slower than fp32). `float32`: fp32 everywhere. Each run records what
    it computed in (`run_config.json`, `computed_in`)."""
    use_vllm: bool = False
    """Sample rollouts with vLLM (GPU only; `pip install vllm`). TRL's importance-sampling
    correction for vLLM is then switched off, as VeRL has none."""
    algorithm: str = field(default="grpo", repr=False)

    def __post_init__(self):
        check_declared(self)
        if self.prompts_per_rollout % self.prompts_per_minibatch:
            divisors = [d for d in range(1, self.prompts_per_rollout + 1) if self.prompts_per_rollout % d == 0]
            nearest = sorted(divisors, key=lambda d: abs(d - self.prompts_per_minibatch))[:2]
            raise ValueError(
                f"prompts_per_rollout={self.prompts_per_rollout} is not a whole number of mini-batches of "
                f"prompts_per_minibatch={self.prompts_per_minibatch} "
                f"({self.prompts_per_rollout / self.prompts_per_minibatch:g} optimizer steps per rollout); TRL "
                f"would silently mix two rollouts in one step. Nearest divisors: {nearest}"
            )
        if (self.prompts_per_minibatch * self.num_generations) % self.micro_batch_size:
            raise ValueError(
                f"micro_batch_size={self.micro_batch_size} must divide the mini-batch of "
                "prompts_per_minibatch × num_generations = "
                f"{self.prompts_per_minibatch * self.num_generations} sequences"
            )
        if self.dual_clip is not None and self.dual_clip <= 1 + self.epsilon:
            raise ValueError(f"dual_clip={self.dual_clip} must exceed 1 + epsilon = {1 + self.epsilon}")

    def total_rollouts(self, prompts: int) -> int:
        """`rollouts`, or `epochs` passes over `prompts` (VeRL drops an incomplete last batch)."""
        if self.rollouts is not None:
            return self.rollouts
        return self.epochs * (prompts // self.prompts_per_rollout)

    @property
    def steps_per_rollout(self) -> int:
        return self.prompts_per_rollout // self.prompts_per_minibatch
