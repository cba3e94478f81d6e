"""Greedy decoding cuts each reply where the task says it ends: before an EOS id, or right
after a stop string (kept, since the reward reads it), each row on its own."""

import collections
import copy
import random
from types import SimpleNamespace

import pytest
import torch
from transformers import LlamaConfig
from transformers.generation.stopping_criteria import StopStringCriteria

from esforget.base import tiny
from esforget.core.models import chat_prompt_ids, load_tokenizer
from esforget.decoding import generation
from esforget.decoding.generation import greedy, greedy_all, make_batches, pad_left, shared_prefix_length
from esforget.train.member_batch import MemberStack
from tests.shared import qwen_shaped_model, sharp_model


class Scripted(torch.nn.Module):
    """Emits a fixed continuation per row, whatever the prompt: a stand-in that lets the
    test state exactly which tokens the decoder sees, so only the cutting is under test. It
    keeps which script each batch row follows in the real KV cache that decoding hands it (as
    the keys of its one layer), so rows leave the batch through the cache's own row selection;
    its decoder's hidden states are the logits themselves."""

    def __init__(self, scripts: list[list[int]], vocab: int):
        super().__init__()
        self.scripts, self.vocab, self.calls = scripts, vocab, 0
        self.config = LlamaConfig(num_hidden_layers=1, num_attention_heads=1, num_key_value_heads=1, head_dim=1)

    def forward(self, input_ids, **kwargs):
        cache = kwargs[generation.CACHE_ARGUMENT]
        if cache.get_seq_length() == 0:
            rows = torch.arange(len(self.scripts), dtype=torch.float32).view(-1, 1, 1, 1)
            cache.update(rows, rows, layer_idx=0)
        rows = cache.layers[0].keys[:, 0, 0, 0].long().tolist()
        logits = torch.zeros(len(rows), input_ids.shape[1], self.vocab)
        for i, row in enumerate(rows):
            script = self.scripts[row]
            logits[i, -1, script[min(self.calls, len(script) - 1)]] = 1.0
        self.calls += 1
        return SimpleNamespace(logits=logits, last_hidden_state=logits)

    def get_decoder(self):
        return self

    def get_output_embeddings(self):
        return torch.nn.Identity()


def decode(replies: list[str], stop_strings: list[str] = (), eos_after: int | None = None) -> list[str]:
    tokenizer = tiny.build_tokenizer()
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


def test_a_model_saved_with_use_cache_off_decodes_with_a_cache_all_the_same(micro_model_dir):
    """Checkpoints trained with gradient checkpointing are saved with `use_cache: false` in their
    config: decoding asks for the cache itself, and replies as the model would with it on."""
    tokenizer = load_tokenizer(micro_model_dir)
    model = sharp_model(micro_model_dir)
    prompts = pad_left(mixed_length_prompts(tokenizer, seed=2), tokenizer.pad_token_id)
    expected = greedy(model, prompts, 8, stop_ids=[])

    model.config.use_cache = False

    assert greedy(model, prompts, 8, stop_ids=[]) == expected


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


# --- several members in one forward, and verified drafts ---------------------------------------


def member_models(model, count: int, sigma: float = 0.3) -> list[torch.nn.Module]:
    """Independent copies of `model`, each with Gaussian noise of its own added to every weight:
    the members, built without any ES code."""
    members = []
    for k in range(count):
        member = copy.deepcopy(model)
        generator = torch.Generator().manual_seed(100 + k)
        with torch.no_grad():
            for p in member.parameters():
                p.add_(sigma * torch.randn(p.shape, generator=generator))
        members.append(member)
    return members


def stacked(model, members) -> MemberStack:
    stack = MemberStack(model, len(members))
    for slot, member in enumerate(members):
        for stacked_param, p in zip(stack.stacks, member.parameters(), strict=True):
            stacked_param[slot].copy_(p.detach())
    return stack


def batch_sizes_seen(model) -> list[int]:
    """Rows of every forward of `model`'s decoder from now on."""
    seen = []
    model.get_decoder().register_forward_pre_hook(
        lambda _, args, kwargs: seen.append(len(kwargs["input_ids"])), with_kwargs=True
    )
    return seen


@pytest.mark.parametrize("seed", range(3))
def test_members_decoded_together_reply_as_each_decoded_alone(micro_model_dir, seed, monkeypatch):
    """Three members in one batched forward give each member's own greedy replies (the
    uncached reference, one prompt at a time). Finished rows leave the batch in equal member
    blocks: with rows dropped as soon as they can be, step s decodes, per member, as many rows
    as the member with most replies still going at s."""
    monkeypatch.setattr(generation, "DROP_FINISHED_AT", 1.0)
    tokenizer = load_tokenizer(micro_model_dir)
    model = sharp_model(micro_model_dir)
    members = member_models(model, 3)
    prompts = mixed_length_prompts(tokenizer, seed)
    stops = []  # each member's most frequent token: every member block has rows that stop early
    for member in members:
        free = [argmax_decode(member, p, 12, []) for p in prompts]
        stops.append(collections.Counter(t for reply in free for t in reply[1:]).most_common(1)[0][0])
    expected = [argmax_decode(member, p, 12, stops) for member in members for p in prompts]
    assert len({len(reply) for reply in expected}) > 1, "rows should stop at different steps"
    seen = batch_sizes_seen(model)

    with stacked(model, members):
        decoded = generation.decode(model, pad_left(prompts, tokenizer.pad_token_id).repeat(3), 12, stops, members=3)

    assert decoded.replies == expected
    # A reply of length L < 12 emits its stop at step L; its row takes part in steps 1 … min(L, 11).
    last_step = [min(len(reply), 11) for reply in expected]
    blocks = [last_step[k * len(prompts) : (k + 1) * len(prompts)] for k in range(3)]
    widths = [max(sum(last >= step for last in block) for block in blocks) for step in range(1, max(last_step) + 1)]
    assert seen == [3 * len(prompts)] + [3 * width for width in widths]
    assert min(widths) < len(prompts)


def test_verified_drafts_change_no_reply_and_a_reply_equal_to_its_draft_costs_one_pass(micro_model_dir):
    tokenizer = load_tokenizer(micro_model_dir)
    model = sharp_model(micro_model_dir)
    members = member_models(model, 3, sigma=0.05)
    prompts = mixed_length_prompts(tokenizer, seed=4)
    batch = pad_left(prompts, tokenizer.pad_token_id)
    stop = argmax_decode(model, prompts[0], 12, [])[5]
    expected = [argmax_decode(member, p, 12, [stop]) for member in members for p in prompts]
    unperturbed = generation.decode(model, batch, 12, [stop]).emitted  # ES's drafts: θ's own replies
    rng = random.Random(0)
    junk = [[rng.randrange(len(tokenizer)) for _ in range(rng.randint(1, 12))] for _ in prompts]
    with stacked(model, members):
        for drafts in (unperturbed, junk):
            assert generation.decode(model, batch.repeat(3), 12, [stop], members=3, drafts=drafts).replies == expected
        assert any(d[: len(e)] == e for d, e in zip(unperturbed * 3, expected, strict=True)), "no draft was right"

    member = members[0]
    own = generation.decode(member, batch, 12, [stop]).emitted
    seen = batch_sizes_seen(member)
    assert generation.decode(member, batch, 12, [stop], drafts=own).replies == expected[: len(prompts)]
    assert len(seen) == 1


def test_drafts_and_stop_strings_cut_each_reply_where_its_text_first_ends_with_a_stop_string(micro_model_dir):
    """Verified rows go on from different steps; each is still cut right after the first stop
    string its own reply completes (reference: the reply's text, token by token)."""
    tokenizer = load_tokenizer(micro_model_dir)
    model = sharp_model(micro_model_dir)
    [member] = member_models(model, 1, sigma=0.05)
    prompts = mixed_length_prompts(tokenizer, seed=2)
    free = [argmax_decode(member, p, 16, []) for p in prompts]
    stop_string = tokenizer.decode(free[1][6:8])

    def cut(reply):
        for end in range(1, len(reply) + 1):
            if tokenizer.decode(reply[:end]).endswith(stop_string):
                return reply[:end]
        return reply

    expected = [cut(reply) for reply in free]
    assert len({len(reply) for reply in expected}) > 1
    criteria = StopStringCriteria(tokenizer, [stop_string])
    batch = pad_left(prompts, tokenizer.pad_token_id)
    drafts = generation.decode(model, batch, 16, [], criteria).emitted
    assert generation.decode(member, batch, 16, [], criteria).replies == expected
    assert generation.decode(member, batch, 16, [], criteria, drafts=drafts).replies == expected


def test_a_layer_without_a_grouped_forward_is_refused_by_name():
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.LayerNorm(4))
    with pytest.raises(ValueError, match=r"^1 \(LayerNorm, parameters \['bias', 'weight'\]\).*members_per_forward: 1"):
        MemberStack(model, 2)


def test_the_scorer_cuts_replies_after_the_tasks_stop_strings(micro_model_dir):
    """A task's stop strings reach the decoder through the scorer: each reply is the
    reference's, cut right after the first point where its text ends with a stop string."""
    from esforget.decoding.greedy_scorer import GreedyScorer
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
    scorer = GreedyScorer(tokenizer, rows, "choice", 16, 4, stop_strings=[stop])
    assert scorer(model).replies == expected
    # the unperturbed replies ES's members verify as drafts end there too
    drafts = [draft for batch in scorer.drafts(model) for draft in batch]
    assert tokenizer.batch_decode(drafts, skip_special_tokens=True) == expected


def test_prompts_sharing_a_preamble_run_it_once_per_member_and_reply_as_whole_prompts(micro_model_dir):
    """A shared preamble (a system turn, a task's fixed wording) is run once per member, its
    cache copied to the member's rows; replies are those of the whole prompts, one at a time,
    with and without drafts."""
    tokenizer = load_tokenizer(micro_model_dir)
    model = sharp_model(micro_model_dir)
    members = member_models(model, 2, sigma=0.05)
    preamble = tokenizer("Using the numbers below, make 24:", add_special_tokens=False)["input_ids"]
    prompts = [preamble + suffix for suffix in mixed_length_prompts(tokenizer, seed=5)]
    stop = argmax_decode(model, prompts[0], 12, [])[3]
    expected = [argmax_decode(member, p, 12, [stop]) for member in members for p in prompts]
    [batch] = make_batches(prompts, tokenizer.pad_token_id, len(prompts), share_prefix=True)
    assert batch.prefix.tolist()[: len(preamble)] == preamble
    seen = []
    model.get_decoder().register_forward_pre_hook(
        lambda _, args, kwargs: seen.append(tuple(kwargs["input_ids"].shape)), with_kwargs=True
    )
    unperturbed = generation.decode(model, batch, 12, [stop]).emitted

    with stacked(model, members):
        for drafts in (None, unperturbed):
            seen.clear()
            out = generation.decode(model, batch.repeat(2), 12, [stop], members=2, drafts=drafts)
            assert out.replies == expected
            assert seen[0] == (2, len(batch.prefix))  # the preamble: one row per member


def test_the_next_token_is_read_at_every_position_however_many(micro_model_dir):
    """Logits are computed a chunk of positions at a time: every position gets its argmax, more
    positions than the model is wide included."""
    model = sharp_model(micro_model_dir)
    hidden = torch.randn(
        2, generation.VERIFY_CHUNK + 17, model.config.hidden_size, generator=torch.Generator().manual_seed(0)
    )
    with torch.no_grad():
        expected = model.get_output_embeddings()(hidden).argmax(dim=-1)
        assert torch.equal(generation._argmax_tokens(model, hidden), expected)


def test_a_reply_stops_at_the_tokenizers_eos_and_at_every_eos_the_model_configures(micro_model_dir):
    """Chat models end a turn with a token of their own (SmolLM2's <|im_end|>), listed in their
    generation config beside the tokenizer's EOS."""
    from esforget.decoding.greedy_scorer import stop_ids

    tokenizer, model = load_tokenizer(micro_model_dir), sharp_model(micro_model_dir)
    model.generation_config.eos_token_id = [5, 7]
    assert stop_ids(tokenizer, model) == sorted({tokenizer.eos_token_id, 5, 7})
    model.generation_config.eos_token_id = 9
    assert stop_ids(tokenizer, model) == sorted({tokenizer.eos_token_id, 9})


def test_the_shared_prefix_leaves_each_prompt_at_least_its_last_token():
    """The first reply token is predicted from a prompt's own last position, so the shared
    prefix stops one short of the shortest prompt even where all of it is shared."""
    assert shared_prefix_length([[1, 2, 3], [1, 2, 4]]) == 2
    assert shared_prefix_length([[5, 6], [5, 6, 7]]) == 1
    assert shared_prefix_length([[5, 6, 7], [5, 6, 7]]) == 2
    assert shared_prefix_length([[1, 2], [3, 2]]) == 0


def test_the_greedy_scorer_runs_the_chat_templates_opening_once_per_member(micro_model_dir):
    from esforget.decoding.greedy_scorer import GreedyScorer
    from esforget.tasks import make_frame

    tokenizer = load_tokenizer(micro_model_dir)
    rows = make_frame(
        [{"id": str(i), "prompt": p, "ground_truth": "1", "info": {}} for i, p in enumerate(["7+8", "6+9"])]
    )
    [batch] = GreedyScorer(tokenizer, rows, "choice", 4, batch_size=8).batches
    assert tokenizer.decode(batch.prefix) == "<|user|>"  # the template's opening, then each prompt
    [part] = GreedyScorer(tokenizer, rows, "choice", 4, batch_size=8).subset([1, 0]).batches  # ES's prompt batches
    assert tokenizer.decode(part.prefix) == "<|user|>" and tokenizer.decode(part.input_ids[0]).startswith("6+9")
    assert batch.input_ids.shape[1] == len(tokenizer("7+8<|end|><|assistant|>", add_special_tokens=False)["input_ids"])


def test_a_qwen_shaped_model_with_biases_and_grouped_kv_heads_decodes_members_together():
    """The paper's Qwen2.5 has q/k/v biases and fewer key/value heads than query heads: its
    members decoded together also reply as each alone (random weights, built from a config)."""
    model = qwen_shaped_model()
    members = member_models(model, 3, sigma=0.1)
    rng = random.Random(0)
    prompts = [[rng.randrange(1, 64) for _ in range(rng.randint(3, 20))] for _ in range(5)]
    expected = [argmax_decode(member, p, 8, []) for member in members for p in prompts]
    with stacked(model, members):
        assert generation.decode(model, pad_left(prompts, 0).repeat(3), 8, [], members=3).replies == expected
