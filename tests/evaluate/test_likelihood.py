"""Retention probes: the harnesses' log-likelihood probe equals the log-probabilities computed
one sequence at a time, KL from the base is zero for the base and exact otherwise, the Wilson
interval has its textbook values, and HellaSwag is prepared as the authors prepared it."""

import json

import pytest
import torch

from esforget.core.models import chat_prompt_ids, load_model, load_tokenizer
from esforget.data.sources import build_splits, hellaswag_preprocess
from esforget.evaluate import likelihood
from esforget.evaluate.likelihood import LOGIT_BUDGET, Divergence, LoglikScorer, logit_budget_batches
from esforget.tasks import make_frame
from tests.shared import FIXTURES, sharp_model

FIXTURE = FIXTURES / "hellaswag_validation.jsonl"

ITEMS = make_frame(
    [
        {
            "id": "0",
            "prompt": "-",
            "ground_truth": "2",
            "info": {"question": "Which is 7+8?", "options": ["14", "15", "17", "56"]},
        },
        {
            "id": "1",
            "prompt": "-",
            "ground_truth": "4",
            "info": {"question": "The cat", "options": ["sat.", "ran away fast.", "x", "slept on the mat all day."]},
        },
        {
            "id": "2",
            "prompt": "-",
            "ground_truth": "1",
            "info": {"question": "Which is 2+2?", "options": ["4", "5", "22", "0"]},
        },
    ]
)


def sequence_logprob(model, ids: list[int], continuation_length: int) -> float:
    """Σ log p of the last tokens of one unpadded sequence, the obvious way."""
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0].float()
    logprobs = torch.log_softmax(logits[:-1], dim=-1)
    targets = torch.tensor(ids[1:])
    picked = logprobs[torch.arange(len(targets)), targets]
    return float(picked[-continuation_length:].sum())


def wrapping_tokenizer(path):
    """The model's tokenizer, made to wrap every text in BOS … EOS unless told not to, as many
    tokenizers do: the probes score the raw text, so they must ask for no special tokens."""
    from tokenizers import processors

    tokenizer = load_tokenizer(path)
    bos, eos = tokenizer.bos_token, tokenizer.eos_token
    tokenizer._tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}", special_tokens=[(bos, tokenizer.bos_token_id), (eos, tokenizer.eos_token_id)]
    )
    assert tokenizer("2")["input_ids"] == [
        tokenizer.bos_token_id,
        *tokenizer("2", add_special_tokens=False)["input_ids"],
        tokenizer.eos_token_id,
    ]
    return tokenizer


TOKENIZERS = {"plain": load_tokenizer, "wrapping": wrapping_tokenizer}


@pytest.mark.parametrize("kind", sorted(TOKENIZERS))
def test_loglikelihood_probe_equals_one_sequence_at_a_time(micro_model_dir, kind):
    """On the sharpened micro model, whose predictions depend on every earlier token and its
    position: left padding must leave each sequence's positions and attention as they are alone."""
    model, tokenizer = sharp_model(micro_model_dir), TOKENIZERS[kind](micro_model_dir)
    scorer = LoglikScorer(tokenizer, ITEMS, batch_size=5)  # batches cut across items, padded
    batched = scorer.logprobs(model)
    for item, sums in zip(ITEMS.iter_rows(named=True), batched, strict=True):
        info = json.loads(item["info"])
        context = tokenizer(info["question"], add_special_tokens=False)["input_ids"]
        for option, got in zip(info["options"], sums, strict=True):
            whole = tokenizer(info["question"] + " " + option, add_special_tokens=False)["input_ids"]
            assert got == pytest.approx(sequence_logprob(model, whole, len(whole) - len(context)), rel=1e-4, abs=1e-4)
    scores = scorer(model)
    for sums, item, acc, acc_norm in zip(
        batched, ITEMS.iter_rows(named=True), scores.acc, scores.acc_norm, strict=True
    ):
        options = json.loads(item["info"])["options"]
        right = int(item["ground_truth"]) - 1
        assert acc == (max(range(4), key=lambda k: sums[k]) == right)
        assert acc_norm == (max(range(4), key=lambda k: sums[k] / len(options[k])) == right)


def test_kl_from_the_base_is_zero_for_the_base_and_exact_for_a_changed_model(micro_model_dir):
    base, tokenizer = load_model(micro_model_dir), load_tokenizer(micro_model_dir)
    prompts = chat_prompt_ids(tokenizer, ["Which is 7+8?", "Count down from 9 to 1, please."])
    divergence = Divergence(base, prompts, tokenizer.pad_token_id)
    assert divergence(base) == 0.0

    tuned = load_model(micro_model_dir)
    with torch.no_grad():
        for p in tuned.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    total, tokens = 0.0, 0
    for ids in prompts:  # unpadded, one prompt at a time
        with torch.no_grad():
            log_p = torch.log_softmax(base(torch.tensor([ids])).logits[0], -1)
            log_q = torch.log_softmax(tuned(torch.tensor([ids])).logits[0], -1)
        total += float(torch.nn.functional.kl_div(log_q, log_p, log_target=True, reduction="sum"))
        tokens += len(ids)
    assert divergence(tuned) == pytest.approx(total / tokens, rel=1e-4)
    assert divergence(tuned) > 0


def test_kl_is_the_same_when_the_logit_budget_splits_the_prompts_into_batches(micro_model_dir, monkeypatch):
    base, tokenizer = load_model(micro_model_dir), load_tokenizer(micro_model_dir)
    prompts = chat_prompt_ids(tokenizer, ["Which is 7+8?", "Count down from 9 to 1, please.", "Hi", "2+2"])
    tuned = sharp_model(micro_model_dir)
    whole = Divergence(base, prompts, tokenizer.pad_token_id)
    vocabulary = base.get_output_embeddings().weight.shape[0]
    monkeypatch.setattr(likelihood, "LOGIT_BUDGET", vocabulary * max(len(p) for p in prompts))
    split = Divergence(base, prompts, tokenizer.pad_token_id)
    assert len(whole.batches) == 1 and len(split.batches) > 1
    assert split(tuned) == pytest.approx(whole(tuned), rel=1e-5)


def test_divergence_batches_go_longest_first_and_keep_their_logits_within_the_budget():
    prompts = [[1] * n for n in (3, 9, 5, 9, 2, 7)]
    vocabulary = LOGIT_BUDGET // 18  # room for the logits of 18 positions per batch
    batches = logit_budget_batches(prompts, pad_id=0, vocabulary=vocabulary)
    assert [tuple(b.input_ids.shape) for b in batches] == [(2, 9), (2, 7), (2, 3)]
    assert [b.attention_mask.sum(-1).tolist() for b in batches] == [[9, 9], [7, 5], [3, 2]]


HELLASWAG = {
    "kind": "hub",
    "loader": "hellaswag",
    "dataset": "json",
    "data_files": str(FIXTURE),
    "splits": {"train": "train", "validation": "train", "test": "train"},
    "every": 10,
    "shuffle_seed": 33,
    "instruction": "Answer with the number only.",
}


def test_hellaswag_is_every_tenth_item_cleaned_shuffled_and_numbered():
    test = build_splits(HELLASWAG, {}, seed=0)["test"]
    raw = [json.loads(line) for line in FIXTURE.read_text().splitlines()]
    assert test["id"].to_list() == [str(raw[i]["ind"]) for i in (0, 10, 20)]
    for row in test.iter_rows(named=True):
        info = json.loads(row["info"])
        source = raw[info["source_index"]]
        # the right ending keeps its place under the shuffle: ground truth follows the label
        right_ending = source["endings"][int(source["label"])].replace(" [header]", "")
        assert info["options"][int(row["ground_truth"]) - 1] == right_ending
        assert sorted(info["order"]) == [0, 1, 2, 3]
        # the harnesses' clean-up: " [title]" → ". ", other [markers] dropped, ctx_b capitalised
        assert "[" not in row["prompt"] and ". . Step" not in row["prompt"]
        assert info["question"].startswith(source["activity_label"] + ": A person") and "Then they" in info["question"]
        context = source["activity_label"] + ": " + source["ctx_a"] + " " + source["ctx_b"].capitalize()
        assert info["question"] == hellaswag_preprocess(context)
        lines = row["prompt"].splitlines()
        assert lines[0] == info["question"] and lines[1:5] == [f"{k}) {o}" for k, o in enumerate(info["options"], 1)]
        assert lines[5] == "Answer with the number only."
    # a fixed seed: the same shuffles every time
    assert build_splits(HELLASWAG, {}, seed=0)["test"].equals(test)


def test_hellaswag_from_the_original_jsonl_files_is_prepared_as_from_the_hub():
    """The authors keep hellaswag_{train,val,test}.jsonl (label an int, split fields); the same
    items in the hub's schema must give the same prepared rows, byte for byte."""
    local = {
        "kind": "local_jsonl",
        "loader": "hellaswag",
        "path": str(FIXTURE.parent / "hellaswag_original"),
        "splits": {s: "hellaswag_val.jsonl" for s in ("train", "validation", "test")},
        "every": 10,
        "shuffle_seed": 33,
        "instruction": "Answer with the number only.",
    }
    from_files, from_hub = build_splits(local, {}, seed=0), build_splits(HELLASWAG, {}, seed=0)
    for split in ("train", "validation", "test"):
        assert from_files[split].equals(from_hub[split])
    assert from_files["test"].height == 3


def test_a_broken_local_jsonl_line_is_named(tmp_path):
    (tmp_path / "hellaswag_val.jsonl").write_text('{"ind": 1}\n{"ind": \n')
    local = {
        "kind": "local_jsonl",
        "loader": "hellaswag",
        "path": str(tmp_path),
        "splits": {s: "hellaswag_val.jsonl" for s in ("train", "validation", "test")},
        "every": 10,
        "shuffle_seed": 33,
        "instruction": "",
    }
    with pytest.raises(ValueError, match=r"hellaswag_val.jsonl, line 2: not JSON"):
        build_splits(local, {}, seed=0)


MMLU = {
    "kind": "hub",
    "loader": "mmlu",
    "dataset": "json",
    "data_files": {"test": str(FIXTURE.parent / "mmlu_test.jsonl"), "dev": str(FIXTURE.parent / "mmlu_dev.jsonl")},
    "splits": {"train": "test", "validation": "test", "test": "test"},
    "shots": 5,
    "shots_split": "dev",
}


def test_mmlu_is_five_shot_from_the_subjects_dev_items():
    test = build_splits(MMLU, {}, seed=0)["test"]
    assert test.height == 6
    prompt = test.row(0, named=True)["prompt"]
    assert prompt.startswith(
        "The following are multiple choice questions (with answers) about high school arithmetic.\n\n"
    )
    assert prompt.count("\nAnswer: B") == 5 and prompt.endswith("\nA. 50\nB. 51\nC. 52\nD. 53\nAnswer:")
    assert "geography" not in prompt  # worked examples come from the question's own subject
    assert test["ground_truth"].to_list() == ["1", "2", "3", "1", "2", "3"]
    assert test["id"].to_list() == ["0", "1", "2", "3", "4", "5"]


def test_mmlu_takes_its_worked_examples_from_the_questions_own_dataset_and_configuration(monkeypatch):
    """On the hub MMLU's questions and worked examples are two splits of one configuration
    (`all`): both are read with the same dataset, configuration and files."""
    import datasets

    calls = []
    load = datasets.load_dataset

    def recording(*args, **kwargs):
        calls.append((args, kwargs.get("data_files")))
        return load("json", data_files=MMLU["data_files"], split=kwargs["split"])

    monkeypatch.setattr(datasets, "load_dataset", recording)
    build_splits({**MMLU, "dataset": "cais/mmlu", "config": "all"}, {}, seed=0)
    assert {args for args, _ in calls} == {("cais/mmlu", "all")} and len(calls) == 2
    assert {str(files) for _, files in calls} == {str(MMLU["data_files"])}


@pytest.mark.parametrize("kind", sorted(TOKENIZERS))
def test_answer_letter_probe_picks_the_most_probable_letter_token(micro_model_dir, kind):
    from esforget.evaluate.likelihood import LetterScorer

    model, tokenizer = load_model(micro_model_dir), TOKENIZERS[kind](micro_model_dir)
    rows = build_splits(MMLU, {}, seed=0)["test"]
    hits = LetterScorer(tokenizer, rows, batch_size=4)(model)
    letters = [tokenizer(" " + c, add_special_tokens=False)["input_ids"][-1] for c in "ABCD"]
    for row, hit in zip(rows.iter_rows(named=True), hits, strict=True):
        ids = tokenizer(row["prompt"], add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            last = model(torch.tensor([ids])).logits[0, -1]
        assert hit == (int(last[letters].argmax()) == int(row["ground_truth"]) - 1)


def test_extra_scorers_grade_the_same_replies_as_probes_beside_the_tasks_own(micro_model_dir):
    """A math task trained with the authors' grader also reports our fairer graders on the very
    same greedy replies: one generative/<scorer> row each, same n and reply length."""
    from esforget.evaluate.retention import EvalTask, evaluate
    from esforget.tasks import make_frame

    rows = make_frame(
        [{"id": str(i), "prompt": f"What is {i}+1?", "ground_truth": f"${i + 1}$", "info": {}} for i in range(6)]
    )
    task = EvalTask(rows, "math_authors", 4, extra_scorers=("math", "math_verify"))
    table = evaluate(
        [(0, micro_model_dir)],
        {"sums": task},
        {"model": "m", "method": "base", "train_task": "", "seed": 0},
        8,
        micro_model_dir,
    )
    assert table["probe"].to_list() == ["generative", "generative/math", "generative/math_verify"]
    assert table["n"].unique().to_list() == [6]
    assert table["mean_generated_tokens"].n_unique() == 1


def test_probe_batches_are_placed_on_the_device_asked_for(micro_model_dir):
    """On a GPU machine every batch must sit where the model is; the meta device shows the
    placement without one."""
    from esforget.evaluate.likelihood import LetterScorer

    tokenizer = load_tokenizer(micro_model_dir)
    scorers = [
        LoglikScorer(tokenizer, ITEMS, batch_size=4, device="meta"),
        LetterScorer(tokenizer, build_splits(MMLU, {}, seed=0)["test"], batch_size=4, device="meta"),
    ]
    for scorer in scorers:
        assert {t.device.type for b in scorer.batches for t in (b.input_ids, b.attention_mask, b.position_ids)} == {
            "meta"
        }


def bpe_tokenizer():
    """A byte-level BPE tokenizer, as GPT-2, Llama 3 and Qwen have, trained here on a few lines:
    a space and a letter are one token, `ĠA`, not a space and an `A`."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    core = ByteLevelBPETokenizer()
    core.train_from_iterator(["Answer: A B C D\n"] * 50, vocab_size=300, min_frequency=1, special_tokens=["<pad>"])
    return PreTrainedTokenizerFast(tokenizer_object=core._tokenizer, pad_token="<pad>")


def test_the_letter_probe_reads_the_tokens_a_bpe_tokenizer_writes_after_answer():
    from esforget.evaluate.likelihood import LetterScorer

    tokenizer = bpe_tokenizer()
    rows = make_frame([{"id": "0", "prompt": "Answer:", "ground_truth": "1", "info": {}}])
    scorer = LetterScorer(tokenizer, rows, batch_size=4)
    assert scorer.letters == tokenizer.convert_tokens_to_ids(["ĠA", "ĠB", "ĠC", "ĠD"])


def test_acc_picks_the_largest_sum_and_acc_norm_the_largest_sum_per_character(micro_model_dir, monkeypatch):
    """Sums fixed by hand: a long option can win on its sum and lose per character."""
    tokenizer = load_tokenizer(micro_model_dir)
    items = make_frame(
        [
            {"id": "0", "prompt": "-", "ground_truth": "1", "info": {"question": "q", "options": ["ab", "abcdefghi"]}},
            {"id": "1", "prompt": "-", "ground_truth": "2", "info": {"question": "q", "options": ["a", "abcd", "x"]}},
            {"id": "2", "prompt": "-", "ground_truth": "1", "info": {"question": "q", "options": ["abcdefg", "b"]}},
        ]
    )
    scorer = LoglikScorer(tokenizer, items, batch_size=8)
    # characters of each option, as lm-eval's acc_norm counts them (the space before it is
    # the delimiter, not the option): [2, 9], [1, 4, 1] and [7, 1]
    monkeypatch.setattr(scorer, "logprobs", lambda model: [[-2.0, -8.0], [-4.0, -5.0, -6.0], [-8.0, -3.0]])
    scores = scorer(None)
    assert scores.acc == [True, False, False]  # -2 > -8; -4 is option 1, the answer 2; -3 is option 2
    assert scores.acc_norm == [False, True, True]  # -1.0 < -0.89; -4, -1.25, -6; -1.14 > -3.0
    # counting " " + option ([3, 10]) would make item 0 right: -0.67 > -0.8


def test_a_one_token_context_with_the_longest_option_of_its_batch_is_scored(micro_model_dir):
    """The logits kept are exactly those of the continuation: with no padding and a one-token
    context, one more position than that would not exist."""
    model, tokenizer = sharp_model(micro_model_dir), load_tokenizer(micro_model_dir)
    items = make_frame([{"id": "0", "prompt": "-", "ground_truth": "1", "info": {"question": "x", "options": ["yz"]}}])
    [[got]] = LoglikScorer(tokenizer, items, batch_size=1).logprobs(model)
    whole = tokenizer("x yz", add_special_tokens=False)["input_ids"]
    assert got == pytest.approx(sequence_logprob(model, whole, len(whole) - 1), rel=1e-5)


def test_sampled_replies_are_the_seeds_and_end_after_their_first_stop(micro_model_dir):
    base, tokenizer = load_model(micro_model_dir), load_tokenizer(micro_model_dir)
    prompts = chat_prompt_ids(tokenizer, ["Which is 7+8?", "Count down from 9 to 1, please.", "Hi"])
    stop = [tokenizer.encode("1", add_special_tokens=False)[0], tokenizer.eos_token_id]
    replies = likelihood.sample_replies(base, prompts, stop, 12, tokenizer.pad_token_id, seed=3)
    assert replies == likelihood.sample_replies(base, prompts, stop, 12, tokenizer.pad_token_id, seed=3)
    assert replies != likelihood.sample_replies(base, prompts, stop, 12, tokenizer.pad_token_id, seed=4)
    for reply in replies:
        ends = [k for k, token in enumerate(reply) if token in stop]
        assert ends in ([], [len(reply) - 1]) and 1 <= len(reply) <= 12  # a stop only as the last token


def test_sampled_kl_is_the_exact_kl_at_every_position_of_the_bases_replies(micro_model_dir):
    """Against one sequence at a time, unpadded, with every logit: the mean over reply tokens of
    KL(base ‖ tuned) of the distributions that predict them."""
    base, tokenizer = load_model(micro_model_dir), load_tokenizer(micro_model_dir)
    prompts = chat_prompt_ids(tokenizer, ["Which is 7+8?", "Count down from 9 to 1, please.", "Hi", "2+2"])
    stop = [tokenizer.eos_token_id]
    divergence = likelihood.SampledDivergence(base, prompts, stop, 10, tokenizer.pad_token_id, seed=0)
    assert divergence(base) == 0.0

    tuned = sharp_model(micro_model_dir)
    replies = likelihood.sample_replies(base, prompts, stop, 10, tokenizer.pad_token_id, seed=0)
    total, tokens = 0.0, 0
    for prompt, reply in zip(prompts, replies, strict=True):
        ids = torch.tensor([prompt + reply])
        with torch.no_grad():
            log_p = torch.log_softmax(base(ids).logits[0], -1)[len(prompt) - 1 : -1]  # predicting the reply
            log_q = torch.log_softmax(tuned(ids).logits[0], -1)[len(prompt) - 1 : -1]
        total += float(torch.nn.functional.kl_div(log_q, log_p, log_target=True, reduction="sum"))
        tokens += len(reply)
    assert divergence.tokens == tokens
    assert divergence(tuned) == pytest.approx(total / tokens, rel=1e-4)
    assert divergence(tuned) > 0


def test_sampled_kl_is_the_same_when_the_logit_budget_splits_the_replies_into_batches(micro_model_dir, monkeypatch):
    base, tokenizer = load_model(micro_model_dir), load_tokenizer(micro_model_dir)
    prompts = chat_prompt_ids(tokenizer, ["Which is 7+8?", "Count down from 9 to 1, please.", "Hi", "2+2"])
    tuned = sharp_model(micro_model_dir)
    whole = likelihood.SampledDivergence(base, prompts, [tokenizer.eos_token_id], 10, tokenizer.pad_token_id, 0)
    monkeypatch.setattr(likelihood, "LOGIT_BUDGET", len(tokenizer) * 30)  # a batch or two of rows
    split = likelihood.SampledDivergence(base, prompts, [tokenizer.eos_token_id], 10, tokenizer.pad_token_id, 0)
    assert len(split.batches) > len(whole.batches)
    assert split(tuned) == pytest.approx(whole(tuned), rel=1e-6)
