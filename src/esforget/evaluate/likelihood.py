"""Forward-pass probes of a checkpoint: the evaluation harnesses' log-likelihood probe of
multiple-choice tasks, and the divergence of a tuned model from its base — on a task's prompts
(`Divergence`), and on replies the base samples for them (`SampledDivergence`, RL's Razor).

Why by hand: lm-evaluation-harness defines the log-likelihood probe, but it loads each model
itself; run beside our generative probe it would load every checkpoint twice and tokenise the
prompts again. Its definition is a few lines over one forward pass, reproduced here:
  acc      = argmax over options of Σ log p(continuation tokens | context)
  acc_norm = argmax of that sum ÷ the option's length in characters
with the raw question as context (no chat template) and " " + option as continuation, the
continuation's tokens being those of tokenize(context + continuation) after the context's.
The length is the option's, without the space before it: lm-eval 0.4's `acc_norm` divides by
`len(choice)`, the choice as `doc_to_choice` gives it, while the space is its target delimiter.

Both forward-pass probes batch their sequences longest first, as the harness does: neighbours
in length pad little (on the SmolLM2 cloze, half of each batch was padding in item order), and
the widest batch runs first, so a batch too large for memory fails at once. Sums are taken per
row under the attention mask, so the order changes no score beyond float rounding.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import polars as pl
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from esforget.decoding.generation import PromptBatch, make_batches, pad_left

LOGIT_BUDGET = 2**27
"""Most logits (rows × positions × vocabulary, fp32: 512 MiB) materialised at once; batches
are split into row chunks below it, so a 150k-token vocabulary does not exhaust memory."""


@dataclass
class ChoiceScores:
    acc: list[bool]
    acc_norm: list[bool]


class LoglikScorer:
    """Tokenises each item's context and options once; scores any model on them many times.

    Rows are a `choice` task in ROW_SCHEMA whose `info` holds `question` and `options`
    (in the listed order) and whose `ground_truth` is the right option's 1-based number.
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase, rows: pl.DataFrame, batch_size: int, device: str = "cpu"):
        sequences, self.continuation_lengths, self.character_lengths, self.options_per_item = [], [], [], []
        for info in rows["info"]:
            item = json.loads(info)
            if "question" not in item or "options" not in item:
                raise ValueError(f"log-likelihood probe: item info {sorted(item)} lacks 'question'/'options'")
            context = tokenizer(item["question"], add_special_tokens=False)["input_ids"]
            for option in item["options"]:
                continuation = " " + option
                whole = tokenizer(item["question"] + continuation, add_special_tokens=False)["input_ids"]
                sequences.append(whole)
                self.continuation_lengths.append(len(whole) - len(context))
                self.character_lengths.append(len(option))
            self.options_per_item.append(len(item["options"]))
        if min(self.continuation_lengths) < 1:
            raise ValueError("log-likelihood probe: an option adds no token to its context")
        self.answers = [int(t) - 1 for t in rows["ground_truth"]]
        self.order = longest_first(sequences)
        self.batches = make_batches([sequences[i] for i in self.order], tokenizer.pad_token_id, batch_size, device)

    @torch.inference_mode()
    def logprobs(self, model: PreTrainedModel) -> list[list[float]]:
        """Σ log p(continuation | context) of every option of every item."""
        sums = [0.0] * len(self.order)
        rows = iter(self.order)
        for batch in self.batches:
            batch_rows = [next(rows) for _ in range(batch.input_ids.shape[0])]
            widths = [self.continuation_lengths[i] for i in batch_rows]
            for i, total in zip(batch_rows, _continuation_logprobs(model, batch, widths), strict=True):
                sums[i] = total
        per_item, start = [], 0
        for count in self.options_per_item:
            per_item.append(sums[start : start + count])
            start += count
        return per_item

    def __call__(self, model: PreTrainedModel) -> ChoiceScores:
        acc, acc_norm, start = [], [], 0
        for total, answer, count in zip(self.logprobs(model), self.answers, self.options_per_item, strict=True):
            chars = self.character_lengths[start : start + count]
            normed = [s / n for s, n in zip(total, chars, strict=True)]
            acc.append(_argmax(total) == answer)
            acc_norm.append(_argmax(normed) == answer)
            start += count
        return ChoiceScores(acc, acc_norm)


def longest_first(sequences: list[list[int]]) -> list[int]:
    """Indices of `sequences`, longest first (ties in their order)."""
    return sorted(range(len(sequences)), key=lambda i: -len(sequences[i]))


def logit_budget_batches(
    sequences: list[list[int]], pad_id: int, vocabulary: int, device: str = "cpu"
) -> list[PromptBatch]:
    """`sequences` longest first, in batches whose logits (rows × width × vocabulary) stay
    within LOGIT_BUDGET: short prompts share a batch with many others, long ones with few."""
    return [
        pad_left([sequences[i] for i in chunk], pad_id, device) for chunk in logit_budget_chunks(sequences, vocabulary)
    ]


def logit_budget_chunks(sequences: list[list[int]], vocabulary: int) -> list[list[int]]:
    """The indices of `logit_budget_batches`' batches."""
    tokens = max(1, LOGIT_BUDGET // vocabulary)
    ordered = longest_first(sequences)
    chunks, start = [], 0
    while start < len(ordered):
        rows = max(1, tokens // len(sequences[ordered[start]]))  # the chunk's first sequence is its widest
        chunks.append(ordered[start : start + rows])
        start += rows
    return chunks


def _argmax(values: list[float]) -> int:
    """Index of the largest value; the first on ties, as numpy's argmax in the harness."""
    return max(range(len(values)), key=values.__getitem__)


def _continuation_logprobs(model: PreTrainedModel, batch: PromptBatch, widths: list[int]) -> list[float]:
    """Σ log p of each row's last `width` tokens. Rows are left-padded, so every continuation
    ends at the last position and only the last max(width)+1 positions need logits."""
    keep = max(widths) + 1
    out = model(
        input_ids=batch.input_ids,
        attention_mask=batch.attention_mask,
        position_ids=batch.position_ids,
        logits_to_keep=keep,
    )
    logprobs = torch.log_softmax(out.logits[:, :-1].float(), dim=-1)  # predicts the last keep−1 tokens
    targets = batch.input_ids[:, -(keep - 1) :]
    picked = logprobs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    return [float(picked[row, picked.shape[1] - width :].sum()) for row, width in enumerate(widths)]


class LetterScorer:
    """MMLU's probe: of the tokens " A" … " D", the one most probable right after the prompt
    (which ends with "Answer:") is the choice. One forward pass per prompt, no generation."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, rows: pl.DataFrame, batch_size: int, device: str = "cpu"):
        self.letters = [tokenizer(" " + letter, add_special_tokens=False)["input_ids"][-1] for letter in "ABCD"]
        if len(set(self.letters)) != 4:
            raise ValueError(f"letter probe: the tokenizer maps ' A' … ' D' to {self.letters}, not four tokens")
        self.prompt_ids = tokenizer(rows["prompt"].to_list(), add_special_tokens=False)["input_ids"]
        self.answers = [int(t) - 1 for t in rows["ground_truth"]]
        self.batches = make_batches(self.prompt_ids, tokenizer.pad_token_id, batch_size, device)

    @torch.inference_mode()
    def __call__(self, model: PreTrainedModel) -> list[bool]:
        chosen = []
        for batch in self.batches:
            out = model(
                input_ids=batch.input_ids,
                attention_mask=batch.attention_mask,
                position_ids=batch.position_ids,
                logits_to_keep=1,
            )
            chosen += out.logits[:, -1, self.letters].argmax(-1).tolist()
        return [c == a for c, a in zip(chosen, self.answers, strict=True)]


def next_token_kl(base_logits: torch.Tensor, tuned_logits: torch.Tensor) -> torch.Tensor:
    """KL(base ‖ tuned) of the next-token distributions at each position, over the whole
    vocabulary, from fp32 log-softmaxes: (…, vocabulary) → (…)."""
    log_p = torch.log_softmax(base_logits.float(), dim=-1)
    log_q = torch.log_softmax(tuned_logits.float(), dim=-1)
    return (log_p.exp() * (log_p - log_q)).sum(-1)


class Divergence:
    """Mean per-token KL(base ‖ tuned) of the next-token distributions over a task's prompts.

    The base stays loaded for the whole job; each checkpoint is compared batch by batch, so
    no distribution is ever stored (a 150k vocabulary over 1,000 prompts would be ~100 GB).
    """

    def __init__(self, base: PreTrainedModel, prompt_ids: list[list[int]], pad_id: int, device: str = "cpu"):
        self.base = base
        vocabulary = base.get_output_embeddings().weight.shape[0]
        self.batches = logit_budget_batches(prompt_ids, pad_id, vocabulary, device)

    @torch.inference_mode()
    def __call__(self, tuned: PreTrainedModel) -> float:
        total, tokens = 0.0, 0
        for batch in self.batches:
            inputs = {
                "input_ids": batch.input_ids,
                "attention_mask": batch.attention_mask,
                "position_ids": batch.position_ids,
            }
            per_token = next_token_kl(self.base(**inputs).logits, tuned(**inputs).logits)
            mask = batch.attention_mask.bool()
            total += float(per_token[mask].sum())
            tokens += int(mask.sum())
        return total / tokens


class SampledDivergence:
    """KL(base ‖ tuned) on the distribution of a task's replies: RL's Razor's predictor of
    forgetting ("RL's Razor", arXiv 2509.04259), which measures it on the *new* task.

    Once per job the base samples one reply per prompt (temperature 1, no top-k or top-p, the
    global torch generator seeded with `seed`; a reply ends after its first stop id, which
    counts as a token). For each checkpoint, at every position of those replies the exact KL
    between the base's and the checkpoint's next-token distributions (full vocabulary, fp32
    log-softmax, summed in float64), averaged over all reply tokens. Its expectation is the
    sequence-level KL(π₀ ‖ π) per token, as the Monte-Carlo estimator of `kschweig/es-awd`
    (`evaluation/evaluate_kl_divergence.py`: the mean over sampled tokens of log π₀(y) − log π(y))
    has; replacing each sampled token's log-ratio by its expectation under the base at that
    prefix lowers the variance. Direction: the base's distribution first, as theirs.
    """

    def __init__(
        self,
        base: PreTrainedModel,
        prompt_ids: list[list[int]],
        stop: list[int],
        max_new_tokens: int,
        pad_id: int,
        seed: int,
        device: str = "cpu",
    ):
        self.base = base
        replies = sample_replies(base, prompt_ids, stop, max_new_tokens, pad_id, seed, device)
        kept = [i for i, reply in enumerate(replies) if reply]
        sequences = [prompt_ids[i] + replies[i] for i in kept]
        widths = [len(replies[i]) for i in kept]
        vocabulary = base.get_output_embeddings().weight.shape[0]
        self.batches = [
            (pad_left([sequences[i] for i in chunk], pad_id, device), [widths[i] for i in chunk])
            for chunk in logit_budget_chunks(sequences, vocabulary)
        ]
        self.tokens = sum(widths)

    @torch.inference_mode()
    def __call__(self, tuned: PreTrainedModel) -> float:
        total = 0.0
        for batch, widths in self.batches:
            keep = max(widths) + 1  # rows are left-padded: every reply ends at the last position
            inputs = {
                "input_ids": batch.input_ids,
                "attention_mask": batch.attention_mask,
                "position_ids": batch.position_ids,
                "logits_to_keep": keep,
            }
            # position i predicts token i + 1: the last keep − 1 positions predict the replies
            per_token = next_token_kl(self.base(**inputs).logits[:, :-1], tuned(**inputs).logits[:, :-1])
            for row, width in enumerate(widths):
                total += float(per_token[row, per_token.shape[1] - width :].double().sum())
        return total / self.tokens if self.tokens else float("nan")


@torch.inference_mode()
def sample_replies(
    model: PreTrainedModel,
    prompt_ids: list[list[int]],
    stop: list[int],
    max_new_tokens: int,
    pad_id: int,
    seed: int,
    device: str = "cpu",
    batch_size: int = 64,
) -> list[list[int]]:
    """One reply per prompt sampled from `model` at temperature 1 without truncation (so the
    samples follow the model's own distribution), cut after its first stop id."""
    from transformers import GenerationConfig

    config = GenerationConfig(
        do_sample=True,
        temperature=1.0,
        top_k=0,
        top_p=1.0,
        max_new_tokens=max_new_tokens,
        eos_token_id=stop,
        pad_token_id=pad_id,
    )
    torch.manual_seed(seed)
    replies = []
    for start in range(0, len(prompt_ids), batch_size):
        batch = pad_left(prompt_ids[start : start + batch_size], pad_id, device)
        out = model.generate(input_ids=batch.input_ids, attention_mask=batch.attention_mask, generation_config=config)
        for row in out[:, batch.input_ids.shape[1] :].tolist():
            ends = [k for k, token in enumerate(row) if token in stop]
            replies.append(row[: ends[0] + 1] if ends else row)
    return replies
