"""Batched greedy decoding with a KV cache, shared by ES fitness, validation and evaluation.

Written by hand rather than calling `model.generate` because the ES inner loop calls it
N times per iteration on the same prompts: prompts are tokenised once per run, batches are
left-padded once, and the loop does nothing per step but one forward and an argmax.
A sequence stops at any of the stop ids (EOS, dropped from the reply) or, when the task names
stop strings, right after one of them is completed (kept: the reward reads it); generation
ends when every row has stopped. Stop strings are matched on the generated tokens by
transformers' `StopStringCriteria`, which handles strings split across several tokens.

Two things ES needs beyond plain decoding:

* Rows in member blocks (`members` > 1): the batch is K equal blocks of rows, block k decoded
  by member k of a `esforget.train.member_batch.MemberStack`. Rows that have finished leave the
  batch (each block keeps its unfinished rows first and all blocks keep the width of the
  fullest), so the blocks stay equal.
* Draft-verified decoding (`drafts`): most perturbed members reply exactly as the unperturbed
  model does. Given that reply as a draft, one teacher-forced pass over prompt + draft gives
  the member's own argmax at every draft position; the longest prefix where they agree is the
  member's reply so far (greedy decoding would have produced exactly those tokens), the
  member's argmax after it is its next token, and decoding goes on from there with the
  rejected draft positions masked out of the cache. A reply that matches its draft costs one
  forward instead of one per token; the weights are read once for the whole reply.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import transformers
from packaging.version import Version
from transformers import DynamicCache, PreTrainedModel
from transformers.generation.stopping_criteria import StopStringCriteria

CACHE_ARGUMENT = "cache" if Version(transformers.__version__).release >= (5, 24) else "past_key_values"
"""The name under which a model's forward takes its KV cache: transformers 5.24 renamed
`past_key_values` to `cache` and 5.40 drops the old name; pyproject.toml's range starts at 5.0.
Decoding builds its `DynamicCache` itself and passes it under this name; the model fills it in
place, so nothing reads the cache back from the output under either name."""

DROP_FINISHED_AT = 0.75
"""Finished rows leave the decode batch once the rows still decoding fit in this share of it:
each drop copies the KV cache once, so it waits until it pays for itself."""

VERIFY_CHUNK = 64
"""Positions whose logits are computed at once (the vocabulary is large: 64 positions × 64
rows × 152 k vocabulary is 2.5 GB in fp32); the prompts' own positions need none."""


@dataclass(frozen=True)
class PromptBatch:
    """Left-padded prompt ids with their attention mask and positions, built once, reused.

    With a `prefix` (the tokens every prompt of the batch starts with: a chat template's
    system turn, a task's fixed preamble), `input_ids` holds only what follows it, and
    decoding runs the prefix once per model instead of once per prompt."""

    input_ids: torch.Tensor  # (B, T)
    attention_mask: torch.Tensor  # (B, T)
    position_ids: torch.Tensor  # (B, T), counted from the start of the prefix
    prefix: torch.Tensor | None = None  # (P,)

    def repeat(self, members: int) -> PromptBatch:
        """The same prompts once per member, member-major: (members · B, T)."""
        if members == 1:
            return self
        rows = (t.repeat(members, 1) for t in (self.input_ids, self.attention_mask, self.position_ids))
        return PromptBatch(*rows, self.prefix)


def pad_left(prompt_ids: list[list[int]], pad_id: int, device: str = "cpu", prefix_length: int = 0) -> PromptBatch:
    """The prompts left-padded to one width; their first `prefix_length` tokens, the same in
    every prompt, kept apart as the batch's `prefix`."""
    suffixes = [ids[prefix_length:] for ids in prompt_ids]
    width = max(len(ids) for ids in suffixes)
    input_ids = torch.full((len(suffixes), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(suffixes), width), dtype=torch.long)
    for row, ids in enumerate(suffixes):
        input_ids[row, width - len(ids) :] = torch.tensor(ids)
        mask[row, width - len(ids) :] = 1
    positions = (mask.cumsum(-1) - 1).clamp(min=0) + prefix_length
    prefix = torch.tensor(prompt_ids[0][:prefix_length], device=device) if prefix_length else None
    return PromptBatch(input_ids.to(device), mask.to(device), positions.to(device), prefix)


def shared_prefix_length(prompt_ids: list[list[int]]) -> int:
    """How many leading tokens all prompts share, leaving each at least one of its own (the
    first reply token is predicted from a prompt's own last token)."""
    first, longest = prompt_ids[0], min(len(ids) for ids in prompt_ids) - 1
    length = 0
    while length < longest and all(ids[length] == first[length] for ids in prompt_ids):
        length += 1
    return length


def make_batches(
    prompt_ids: list[list[int]], pad_id: int, batch_size: int, device: str = "cpu", share_prefix: bool = False
) -> list[PromptBatch]:
    """Batches of `batch_size` prompts; with `share_prefix`, each batch's common leading
    tokens kept apart (for `decode`; the probes run whole prompts)."""
    chunks = [prompt_ids[i : i + batch_size] for i in range(0, len(prompt_ids), batch_size)]
    return [pad_left(c, pad_id, device, shared_prefix_length(c) if share_prefix else 0) for c in chunks]


@dataclass
class Decoded:
    """Greedy output of a batch, per row: the reply (cut before a stop id, after a stop
    string) and everything emitted (the stop id included), which is what a draft must be."""

    replies: list[list[int]]
    emitted: list[list[int]]


@torch.inference_mode()
def decode(
    model: PreTrainedModel,
    batch: PromptBatch,
    max_new_tokens: int,
    stop_ids: list[int],
    stop_strings: StopStringCriteria | None = None,
    members: int = 1,
    drafts: list[list[int]] | None = None,
) -> Decoded:
    """Greedy decoding of `batch` (`members` equal blocks of rows; `drafts`, one per row of a
    block, verified first). See the module docstring."""
    n, device = batch.input_ids.shape[0], batch.input_ids.device
    stops = torch.tensor(stop_ids, device=device)
    generated = torch.zeros((n, max_new_tokens), dtype=torch.long, device=device)
    length = torch.full((n,), max_new_tokens, dtype=torch.long, device=device)  # reply length per row
    by_stop_id = torch.zeros(n, dtype=torch.bool, device=device)  # whether a row ended with a stop id
    # Per batch row (the batch shrinks as rows finish): which original row it is, its tokens so
    # far, whether it has stopped, its attention mask and the position of its next token.
    rows = torch.arange(n, device=device)
    done = torch.zeros(n, dtype=torch.bool, device=device)
    if drafts is None:
        hidden, cache, mask = _run_prompts(model, batch, members)
        token = _argmax_tokens(model, hidden[:, -1:]).squeeze(1)
        steps = torch.zeros(n, dtype=torch.long, device=device)
        next_pos = batch.position_ids[:, -1] + 1
    else:
        token, steps, mask, next_pos, cache = _verify(model, batch, members, drafts * members, generated)
    while True:
        # -- record this step's token of every unfinished row, and which rows it stops --
        at = steps.clamp(max=max_new_tokens - 1)
        generated[rows, at] = torch.where(done, generated[rows, at], token)
        by_id = torch.isin(token, stops) & ~done
        length[rows] = torch.where(by_id, steps, length[rows])
        by_stop_id[rows] |= by_id
        done |= by_id
        if stop_strings is not None:
            by_string = _completes_stop_string(stop_strings, generated, rows, steps) & ~done
            length[rows] = torch.where(by_string, steps + 1, length[rows])
            done |= by_string
        steps = steps + (~done).long()
        done |= steps >= max_new_tokens
        # -- drop finished rows; stop when none is left (one host sync per step) --
        width = done.shape[0] // members
        needed = int((~done).view(members, width).sum(dim=1).max())
        if needed == 0:
            break
        if needed <= DROP_FINISHED_AT * width:
            keep = _unfinished_first(done, members, needed)
            rows, done, steps, token, next_pos, mask = (t[keep] for t in (rows, done, steps, token, next_pos, mask))
            cache.batch_select_indices(keep)
        mask = torch.cat([mask, torch.ones((mask.shape[0], 1), dtype=mask.dtype, device=device)], dim=1)
        out = model(
            input_ids=token[:, None],
            attention_mask=mask,
            position_ids=next_pos[:, None],
            use_cache=True,
            **{CACHE_ARGUMENT: cache},
        )
        token = out.logits[:, -1, :].argmax(dim=-1)
        next_pos = next_pos + 1
    tokens = generated.tolist()
    return Decoded(
        replies=[row[:k] for row, k in zip(tokens, length.tolist(), strict=True)],
        emitted=[row[:k] for row, k in zip(tokens, (length + by_stop_id.long()).tolist(), strict=True)],
    )


def greedy(
    model: PreTrainedModel,
    batch: PromptBatch,
    max_new_tokens: int,
    stop_ids: list[int],
    stop_strings: StopStringCriteria | None = None,
) -> list[list[int]]:
    """Greedy completions of one batch, each cut before its first stop id or after the
    token that completes a stop string."""
    return decode(model, batch, max_new_tokens, stop_ids, stop_strings).replies


def greedy_all(
    model: PreTrainedModel,
    batches: list[PromptBatch],
    max_new_tokens: int,
    stop_ids: list[int],
    stop_strings: StopStringCriteria | None = None,
) -> list[list[int]]:
    return [row for batch in batches for row in greedy(model, batch, max_new_tokens, stop_ids, stop_strings)]


def _unfinished_first(done: torch.Tensor, members: int, width: int) -> torch.Tensor:
    """Batch indices keeping `width` rows of every member block, its unfinished rows first
    (in their order), so that the blocks stay equal."""
    blocks = done.view(members, -1)
    order = torch.argsort(blocks.to(torch.int8), dim=1, stable=True)[:, :width]
    return (order + torch.arange(members, device=done.device)[:, None] * blocks.shape[1]).reshape(-1)


def _completes_stop_string(
    criteria: StopStringCriteria, generated: torch.Tensor, rows: torch.Tensor, steps: torch.Tensor
) -> torch.Tensor:
    """Whether the token each row emitted at `steps` completes a stop string, judged on that
    row's generated tokens only (the last `maximum_token_len` of them)."""
    width = criteria.maximum_token_len
    found = torch.zeros(rows.shape[0], dtype=torch.bool, device=rows.device)
    # Rows are grouped by how many tokens they have (all equal unless drafts were verified).
    for count in torch.unique((steps + 1).clamp(max=width)).tolist():
        group = ((steps + 1).clamp(max=width) == count).nonzero().squeeze(1)
        columns = steps[group, None] - count + 1 + torch.arange(count, device=rows.device)
        found[group] = criteria(generated[rows[group, None], columns], None)
    return found


def _run_prompts(
    model: PreTrainedModel, batch: PromptBatch, members: int, tail: torch.Tensor | None = None, tail_mask=None
) -> tuple[torch.Tensor, DynamicCache, torch.Tensor]:
    """One pass of the decoder over the prompts — their shared prefix first, once per member,
    its cache then copied to the member's rows — and over `tail` tokens appended to every row.
    Returns (hidden states of the prompts' own tokens and the tail, cache, attention mask)."""
    n, device = batch.input_ids.shape[0], batch.input_ids.device
    decoder, cache, mask = model.get_decoder(), DynamicCache(config=model.config), batch.attention_mask
    ids, positions = batch.input_ids, batch.position_ids
    if batch.prefix is not None:
        length = batch.prefix.shape[0]
        decoder(
            input_ids=batch.prefix.expand(members, length),
            position_ids=torch.arange(length, device=device).expand(members, length),
            use_cache=True,
            **{CACHE_ARGUMENT: cache},
        )
        cache.batch_repeat_interleave(n // members)
        mask = torch.cat([torch.ones((n, length), dtype=mask.dtype, device=device), mask], dim=1)
    if tail is not None:
        ids = torch.cat([ids, tail], dim=1)
        mask = torch.cat([mask, tail_mask.to(mask.dtype)], dim=1)
        positions = torch.cat([positions, positions[:, -1:] + 1 + torch.arange(tail.shape[1], device=device)], dim=1)
    out = decoder(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, **{CACHE_ARGUMENT: cache})
    return out.last_hidden_state, cache, mask


def _argmax_tokens(model: PreTrainedModel, hidden: torch.Tensor) -> torch.Tensor:
    """The next token at each of `hidden`'s positions: the argmax of the output embedding's
    logits, computed a chunk of positions at a time (a model's own post-processing of its
    logits, such as soft-capping, is monotonic and leaves the argmax alone)."""
    head = model.get_output_embeddings()
    return torch.cat(
        [head(hidden[:, i : i + VERIFY_CHUNK]).argmax(dim=-1) for i in range(0, hidden.shape[1], VERIFY_CHUNK)], dim=1
    )


def _verify(
    model: PreTrainedModel, batch: PromptBatch, members: int, drafts: list[list[int]], generated: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, DynamicCache]:
    """One teacher-forced pass over prompt + draft per row. Writes the accepted prefix of each
    draft into `generated` and returns the decoding state after it: (the token to record at
    `steps` — the row's own argmax after its accepted prefix —, steps, attention mask with the
    rejected draft positions masked out, position of the next token, KV cache)."""
    n, device = batch.input_ids.shape[0], batch.input_ids.device
    lengths = torch.tensor([len(d) for d in drafts], device=device)
    width = int(lengths.max())
    draft = torch.zeros((n, width), dtype=torch.long, device=device)
    for row, tokens in enumerate(drafts):
        draft[row, : len(tokens)] = torch.tensor(tokens, device=device)
    columns = torch.arange(width, device=device)
    hidden, cache, mask = _run_prompts(model, batch, members, draft, columns < lengths[:, None])
    # The row's argmax after its prompt and after each draft prefix: (n, width + 1).
    predicted = _argmax_tokens(model, hidden[:, batch.input_ids.shape[1] - 1 :])
    agree = (predicted[:, :width] == draft) & (columns < lengths[:, None])
    accepted = agree.long().cumprod(dim=1).sum(dim=1)
    # A draft's last token may be a stop: it is recorded through the decoding loop's checks,
    # so at most length − 1 tokens are taken as they are.
    steps = torch.minimum(accepted, lengths - 1)
    taken = columns < steps[:, None]
    generated[:, :width] = torch.where(taken, draft, 0)
    token = predicted.gather(1, steps[:, None]).squeeze(1)
    mask = torch.cat([mask[:, :-width], taken.to(mask.dtype)], dim=1)
    return token, steps, mask, batch.position_ids[:, -1] + 1 + steps, cache
