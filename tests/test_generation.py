"""Greedy decoding cuts each reply where the task says it ends: before an EOS id, or right
after a stop string (kept, since the reward reads it), each row on its own."""

from types import SimpleNamespace

import torch
from transformers.generation.stopping_criteria import StopStringCriteria

from esforget import tiny_model
from esforget.generation import greedy, pad_left


class Scripted(torch.nn.Module):
    """Emits a fixed continuation per row, whatever the prompt: a stand-in that lets the
    test state exactly which tokens the decoder sees, so only the cutting is under test."""

    def __init__(self, scripts: list[list[int]], vocab: int):
        super().__init__()
        self.scripts, self.vocab, self.calls = scripts, vocab, 0

    def forward(self, input_ids, **_):
        logits = torch.zeros(len(self.scripts), input_ids.shape[1], self.vocab)
        for row, script in enumerate(self.scripts):
            logits[row, -1, script[min(self.calls, len(script) - 1)]] = 1.0
        self.calls += 1
        return SimpleNamespace(logits=logits, past_key_values=None)


def decode(replies: list[str], stop_strings: list[str] = (), eos_after: int | None = None) -> list[str]:
    tokenizer = tiny_model.build_tokenizer()
    scripts = [tokenizer(text, add_special_tokens=False)["input_ids"] for text in replies]
    if eos_after is not None:
        scripts = [ids[:eos_after] + [tokenizer.eos_token_id] + ids[eos_after:] for ids in scripts]
    prompt = pad_left([[tokenizer.pad_token_id + 1]] * len(replies), tokenizer.pad_token_id)
    criteria = StopStringCriteria(tokenizer, list(stop_strings)) if stop_strings else None
    model = Scripted(scripts, len(tokenizer))
    out = greedy(model, prompt, max_new_tokens=30, stop_ids=[tokenizer.eos_token_id], stop_strings=criteria)
    return tokenizer.batch_decode(out, skip_special_tokens=True)


def test_a_reply_ends_after_its_stop_string_which_is_kept():
    assert decode(["7+5</answer>\nand more"], ["</answer>"]) == ["7+5</answer>"]


def test_a_stop_string_spanning_several_tokens_is_matched():
    # The tiny tokenizer has one token per character: "12" is two tokens.
    assert decode(["3 12 45"], ["12"]) == ["3 12"]


def test_a_reply_ends_before_eos_which_is_dropped():
    assert decode(["abcdef"], eos_after=3) == ["abc"]


def test_rows_stop_independently_and_without_stop_strings_run_to_the_limit():
    assert decode(["1+2</answer>xx", "4+5+6</answer>y"], ["</answer>"]) == ["1+2</answer>", "4+5+6</answer>"]
    [unbounded] = decode(["1+2</answer>xx"])  # 30 tokens: "1", "+", "2", "</answer>" and 26 × "x"
    assert unbounded == "1+2</answer>" + "x" * 26
