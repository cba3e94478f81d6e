"""Greedy decoding cuts each reply where the task says it ends: before an EOS id, or right
after a stop string (kept, since the reward reads it), each row on its own."""

import random
from types import SimpleNamespace

import pytest
import torch
from transformers.generation.stopping_criteria import StopStringCriteria

from esforget import tiny_model
from esforget.generation import greedy, greedy_all, make_batches, pad_left
from esforget.models import chat_prompt_ids, load_model, load_tokenizer


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


# --- batched decoding against a slow, obviously correct reference -----------------------------


def argmax_decode(model, prompt: list[int], max_new_tokens: int, stop_ids: list[int]) -> list[int]:
    """Greedy decoding as its definition reads: one unpadded prompt, the whole sequence run
    through the model at every step (no KV cache, no mask, no positions), the argmax appended."""
    sequence, reply = list(prompt), []
    for _ in range(max_new_tokens):
        with torch.no_grad():
            token = int(model(input_ids=torch.tensor([sequence])).logits[0, -1].argmax())
        if token in stop_ids:
            break
        reply.append(token)
        sequence.append(token)
    return reply


SHARPEN = 6.0
"""Factor on every weight but the norms' (see `sharp_model`)."""


def sharp_model(micro_model_dir):
    """The random micro Llama with its weights scaled up: at the default init scale its argmax
    hardly depends on anything but the last token, so masks and positions could be wrong
    unnoticed; scaled, every earlier token moves it."""
    model = load_model(micro_model_dir)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" not in name:
                p.mul_(SHARPEN)
    return model


def mixed_length_prompts(tokenizer, seed: int) -> list[list[int]]:
    """Prompts of 3 to 40 tokens, so that left padding ranges from none to most of a row."""
    rng = random.Random(seed)
    alphabet = "0123456789+-*/= abc"
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(3, 40))) for _ in range(6)]
    return tokenizer(texts, add_special_tokens=False)["input_ids"]


@pytest.mark.parametrize("seed", range(5))
def test_batched_left_padded_decoding_equals_one_prompt_at_a_time_without_a_cache(micro_model_dir, seed):
    """A real (random) Llama: positions, the padding mask and the KV cache all decide the argmax,
    so an error in any of them changes replies. A token the reference emits mid-reply is made a
    stop id, so that rows end at different steps and the others decode on."""
    tokenizer = load_tokenizer(micro_model_dir)
    model = sharp_model(micro_model_dir)
    prompts = mixed_length_prompts(tokenizer, seed)
    free = [argmax_decode(model, p, 12, []) for p in prompts]
    stop = free[0][len(free[0]) // 2]
    expected = [argmax_decode(model, p, 12, [stop]) for p in prompts]
    assert len({len(reply) for reply in expected}) > 1, "rows should stop at different steps"

    batched = greedy(model, pad_left(prompts, tokenizer.pad_token_id), 12, stop_ids=[stop])

    assert batched == expected


def test_batched_decoding_equals_transformers_generate(micro_model_dir):
    tokenizer = load_tokenizer(micro_model_dir)
    model = sharp_model(micro_model_dir)
    prompts = mixed_length_prompts(tokenizer, seed=11)
    eos = tokenizer.eos_token_id
    expected = []
    for prompt in prompts:
        out = model.generate(
            torch.tensor([prompt]), max_new_tokens=10, do_sample=False, eos_token_id=eos, pad_token_id=eos
        )
        expected.append([t for t in out[0, len(prompt) :].tolist() if t != eos])

    assert greedy_all(model, make_batches(prompts, tokenizer.pad_token_id, 4), 10, stop_ids=[eos]) == expected


def test_the_scorer_cuts_replies_after_the_tasks_stop_strings(micro_model_dir):
    """A task's stop strings reach the decoder through the scorer: each reply is the
    reference's, cut right after the first point where its text ends with a stop string."""
    from esforget.scoring import GreedyScorer
    from esforget.tasks import make_frame

    tokenizer = load_tokenizer(micro_model_dir)
    model = sharp_model(micro_model_dir)
    texts = [tokenizer.decode(ids) for ids in mixed_length_prompts(tokenizer, seed=3)]
    rows = make_frame([{"id": str(i), "prompt": t, "ground_truth": "1", "info": {}} for i, t in enumerate(texts)])
    scorer_prompts = chat_prompt_ids(tokenizer, texts)
    free = [argmax_decode(model, p, 16, [tokenizer.eos_token_id]) for p in scorer_prompts]
    stop = tokenizer.decode(free[0][4:6])

    def cut(reply):
        ends = [end for end in range(1, len(reply) + 1) if tokenizer.decode(reply[:end]).endswith(stop)]
        return reply[: ends[0]] if ends else reply

    expected = [tokenizer.decode(cut(reply), skip_special_tokens=True) for reply in free]
    assert len({len(reply) for reply in expected}) > 1
    assert GreedyScorer(tokenizer, rows, "choice", 16, 4, stop_strings=[stop])(model).replies == expected
