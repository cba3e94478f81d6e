"""Greedy replies to a task's prompts and their rewards: the one scorer ES fitness,
validation and the retention evaluation all use, so that "accuracy" means one thing."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
from transformers import PreTrainedModel, PreTrainedTokenizerBase
from transformers.generation.stopping_criteria import StopStringCriteria

from esforget.core.models import chat_prompt_ids
from esforget.decoding.generation import decode, make_batches
from esforget.tasks import correct_threshold, score_replies


@dataclass
class Scored:
    rewards: list[float]
    correct: list[bool]
    replies: list[str]
    generated_tokens: int

    @property
    def accuracy(self) -> float:
        return sum(self.correct) / len(self.correct)

    @property
    def mean_reward(self) -> float:
        """numpy's (pairwise) mean, as the authors' `np.mean(rewards)` computes ES fitness."""
        return float(np.mean(self.rewards))


def stop_ids(tokenizer: PreTrainedTokenizerBase, model: PreTrainedModel) -> list[int]:
    """Tokens that end a reply: the tokenizer's EOS and every EOS of the model's generation
    config (chat models end a turn with their own token, e.g. SmolLM2's <|im_end|>)."""
    ids = {tokenizer.eos_token_id}
    configured = getattr(model.generation_config, "eos_token_id", None)
    ids.update(configured if isinstance(configured, list) else [configured])
    return sorted(i for i in ids if i is not None)


class GreedyScorer:
    """Tokenises and pads a task's prompts once; scores any model on them many times."""

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        rows: pl.DataFrame,
        scorer: str,
        max_new_tokens: int,
        batch_size: int,
        device: str = "cpu",
        stop_strings: list[str] | tuple[str, ...] = (),
    ):
        self.tokenizer, self.rows, self.scorer = tokenizer, rows, scorer
        self.max_new_tokens = max_new_tokens
        self.stop_strings = StopStringCriteria(tokenizer, list(stop_strings)) if stop_strings else None
        self.batch_size, self.device = batch_size, device
        self.prompt_ids = chat_prompt_ids(tokenizer, rows["prompt"].to_list())
        self.batches = make_batches(self.prompt_ids, tokenizer.pad_token_id, batch_size, device, share_prefix=True)

    def subset(self, indices: list[int]) -> GreedyScorer:
        """A scorer on some of these prompts, reusing their token ids (no re-tokenising)."""
        part = object.__new__(GreedyScorer)
        part.__dict__.update(self.__dict__)
        part.rows = self.rows[indices]
        part.prompt_ids = [self.prompt_ids[i] for i in indices]
        part.batches = make_batches(
            part.prompt_ids, self.tokenizer.pad_token_id, self.batch_size, self.device, share_prefix=True
        )
        return part

    def __call__(self, model: PreTrainedModel) -> Scored:
        return self.score(model)[0]

    def score(
        self, model: PreTrainedModel, members: int = 1, drafts: list[list[list[int]]] | None = None
    ) -> list[Scored]:
        """The scores of `members` models decoded together: `model` itself, or the members of
        its entered `MemberStack` (`esforget.train.member_batch`). `drafts` (from `drafts`) are
        verified first instead of decoding every token."""
        ids = stop_ids(self.tokenizer, model)
        completions: list[list[list[int]]] = [[] for _ in range(members)]
        for b, batch in enumerate(self.batches):
            replies = decode(
                model,
                batch.repeat(members),
                self.max_new_tokens,
                ids,
                self.stop_strings,
                members,
                None if drafts is None else drafts[b],
            ).replies
            size = batch.input_ids.shape[0]
            for k in range(members):
                completions[k] += replies[k * size : (k + 1) * size]
        return [self._scored(c) for c in completions]

    def drafts(self, model: PreTrainedModel) -> list[list[list[int]]]:
        """Every prompt's greedy output by `model`, stop id included, batch by batch: the
        drafts `score` verifies (ES takes the unperturbed model's)."""
        ids = stop_ids(self.tokenizer, model)
        return [decode(model, batch, self.max_new_tokens, ids, self.stop_strings).emitted for batch in self.batches]

    def _scored(self, completions: list[list[int]]) -> Scored:
        replies = self.tokenizer.batch_decode(completions, skip_special_tokens=True)
        rewards = score_replies(self.scorer, replies, self.rows)
        threshold = correct_threshold(self.scorer)
        return Scored(
            rewards=rewards,
            correct=[r >= threshold for r in rewards],
            replies=replies,
            generated_tokens=sum(len(c) for c in completions),
        )
