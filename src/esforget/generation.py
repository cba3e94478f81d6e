"""Batched greedy decoding with a KV cache, shared by ES fitness, validation and evaluation.

Written by hand rather than calling `model.generate` because the ES inner loop calls it
N times per iteration on the same prompts: prompts are tokenised once per run, batches are
left-padded once, and the loop does nothing per step but one forward and an argmax.
A sequence stops at any of the stop ids (EOS, dropped from the reply) or, when the task names
stop strings, right after one of them is completed (kept: the reward reads it); generation
ends when every row has stopped. Stop strings are matched on the generated tokens by
transformers' `StopStringCriteria`, which handles strings split across several tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import PreTrainedModel
from transformers.generation.stopping_criteria import StopStringCriteria


@dataclass(frozen=True)
class PromptBatch:
    """Left-padded prompt ids with their attention mask and positions, built once, reused."""

    input_ids: torch.Tensor  # (B, T)
    attention_mask: torch.Tensor  # (B, T)
    position_ids: torch.Tensor  # (B, T)


def pad_left(prompt_ids: list[list[int]], pad_id: int, device: str = "cpu") -> PromptBatch:
    width = max(len(ids) for ids in prompt_ids)
    input_ids = torch.full((len(prompt_ids), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompt_ids), width), dtype=torch.long)
    for row, ids in enumerate(prompt_ids):
        input_ids[row, width - len(ids) :] = torch.tensor(ids)
        mask[row, width - len(ids) :] = 1
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    return PromptBatch(input_ids.to(device), mask.to(device), positions.to(device))


def make_batches(prompt_ids: list[list[int]], pad_id: int, batch_size: int, device: str = "cpu") -> list[PromptBatch]:
    return [pad_left(prompt_ids[i : i + batch_size], pad_id, device) for i in range(0, len(prompt_ids), batch_size)]


@torch.inference_mode()
def greedy(
    model: PreTrainedModel,
    batch: PromptBatch,
    max_new_tokens: int,
    stop_ids: list[int],
    stop_strings: StopStringCriteria | None = None,
) -> list[list[int]]:
    """Greedy completions of one batch, each cut before its first stop id or after the
    token that completes a stop string."""
    n = batch.input_ids.shape[0]
    device = batch.input_ids.device
    stops = torch.tensor(stop_ids, device=device)
    mask = batch.attention_mask
    out = model(input_ids=batch.input_ids, attention_mask=mask, position_ids=batch.position_ids, use_cache=True)
    cache = out.past_key_values
    next_pos = batch.position_ids[:, -1:] + 1
    done = torch.zeros(n, dtype=torch.bool, device=device)
    kept = torch.full((n,), max_new_tokens, dtype=torch.long, device=device)  # reply length per row
    tokens = []
    for step in range(max_new_tokens):
        token = out.logits[:, -1, :].argmax(dim=-1)
        tokens.append(token)
        by_id = torch.isin(token, stops) & ~done
        kept[by_id] = step
        done |= by_id
        if stop_strings is not None:
            window = torch.stack(tokens[-stop_strings.maximum_token_len :], dim=1)
            by_string = stop_strings(window, None) & ~done
            kept[by_string] = step + 1
            done |= by_string
        if bool(done.all()):  # one host sync per step; cheap next to the forward
            break
        mask = torch.cat([mask, torch.ones((n, 1), dtype=mask.dtype, device=device)], dim=1)
        out = model(
            input_ids=token[:, None], attention_mask=mask, position_ids=next_pos, past_key_values=cache, use_cache=True
        )
        cache = out.past_key_values
        next_pos = next_pos + 1
    generated = torch.stack(tokens, dim=1).tolist()
    return [row[:length] for row, length in zip(generated, kept.tolist(), strict=True)]


def greedy_all(
    model: PreTrainedModel,
    batches: list[PromptBatch],
    max_new_tokens: int,
    stop_ids: list[int],
    stop_strings: StopStringCriteria | None = None,
) -> list[list[int]]:
    return [row for batch in batches for row in greedy(model, batch, max_new_tokens, stop_ids, stop_strings)]
