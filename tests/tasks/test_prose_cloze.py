"""The prose cloze: passages of Python's own documentation, the true next sentence among three
sentences of other topics."""

import json
import random
from pydoc_data.topics import topics

from esforget.data.sources import build_splits
from esforget.tasks import prose_cloze

CLOZE = {"kind": "prose_cloze_generator", "context_sentences": 2, "instruction": "Answer with the number only."}


def test_passages_keep_prose_and_drop_grammar_code_and_headings():
    prose = prose_cloze.passages()
    assert len(prose) > 250
    sentences = [s for _, kept in prose for s in kept]
    assert not any("::=" in s for s in sentences)
    assert not any("*****" in s for s in sentences)
    assert all(prose_cloze.MIN_WORDS <= len(s.split()) <= prose_cloze.MAX_WORDS for s in sentences)
    # a passage is consecutive text of one topic
    for topic, kept in prose:
        assert " ".join(kept) in " ".join(topics[topic].split())


def test_an_item_continues_a_passage_with_its_next_sentence_among_other_topics():
    rng = random.Random(5)
    topic_sentences = {t: set() for t, _ in prose_cloze.passages()}
    for t, kept in prose_cloze.passages():
        topic_sentences[t].update(kept)
    for _ in range(50):
        context, options, right, topic = prose_cloze.random_item(rng, 2)
        truth = options[right - 1]
        assert len(options) == 4 == len(set(options))
        # the context is the sentences just before the true one, in the topic's raw text
        assert f"{context} {truth}" in " ".join(topics[topic].split())
        for wrong in options[: right - 1] + options[right:]:
            assert wrong not in topic_sentences[topic]


def test_the_generator_writes_numbered_options_and_what_the_likelihood_probe_reads():
    frames = build_splits(CLOZE, {"train": 2, "validation": 2, "test": 20}, seed=1)
    row = frames["test"].row(0, named=True)
    info = json.loads(row["info"])
    lines = row["prompt"].split("\n")
    assert lines[0] == info["question"]
    assert lines[1:5] == [f"{i}) {o}" for i, o in enumerate(info["options"], start=1)]
    assert lines[5] == "Answer with the number only."
    answers = [int(t) for t in frames["test"]["ground_truth"]]
    assert set(answers) > {1} and all(1 <= a <= 4 for a in answers)  # shuffled, not always first
    contexts = [json.loads(i)["question"] for f in frames.values() for i in f["info"]]
    truths = [
        (json.loads(i)["question"], json.loads(i)["options"][int(t) - 1])
        for f in frames.values()
        for i, t in zip(f["info"], f["ground_truth"], strict=True)
    ]
    assert len(set(truths)) == len(contexts) == 24  # no passage and continuation twice
