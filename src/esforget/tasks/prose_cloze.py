"""A HellaSwag-style cloze over English prose that ships with Python: which of four
sentences continues a passage?

The text is the standard library's documentation topics (`pydoc_data.topics`, the pages
`help("assert")` shows; ~465 kB, part of every CPython), read at run time, never copied
into the repository. Each item's context is one to `context_sentences` consecutive prose
sentences of a paragraph, the right option is the sentence that follows them, and the three
wrong options are sentences the topic does not hold; the options are listed 1–4 as the authors ask
HellaSwag, and the item's `info` holds `question`/`options` for the log-likelihood probe
(acc, acc_norm), which is where a 135 M-parameter model shows what it knows (docs/results/
smollm2.md). SmolLM2's pretraining corpus may well hold these pages: forgetting memorised
text is still forgetting, and a continuation must still be told from three fluent sentences.

Only prose is kept: grammar productions (`::=`), indented code and headings are dropped, and
sentences are split at ". " before a capital letter. A *passage* is a run of consecutive
sentences of 5–30 words within one paragraph, so that a context and its continuation are always
adjacent in the text.
"""

from __future__ import annotations

import random
import re
from functools import cache

N_OPTIONS = 4
MIN_WORDS, MAX_WORDS = 5, 30
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")
_RULE = set("*=-~^")


@cache
def passages() -> tuple[tuple[str, tuple[str, ...]], ...]:
    """(topic, sentences) of every passage of at least two sentences, in topic order."""
    from pydoc_data.topics import topics

    out = []
    for topic in sorted(topics):
        for block in re.split(r"\n\s*\n", topics[topic]):
            lines = block.split("\n")
            if any(line.startswith(" ") or "::=" in line or set(line.strip()) <= _RULE for line in lines):
                continue
            run: list[str] = []
            for sentence in [*_SENTENCE_END.split(" ".join(block.split())), ""]:
                if MIN_WORDS <= len(sentence.split()) <= MAX_WORDS:
                    run.append(sentence)
                    continue
                if len(run) >= 2:
                    out.append((topic, tuple(run)))
                run = []
    return tuple(out)


def random_item(rng: random.Random, context_sentences: int) -> tuple[str, list[str], int, str]:
    """(context, options, 1-based index of the true continuation, topic)."""
    prose = passages()
    topic, sentences = prose[rng.randrange(len(prose))]
    at = rng.randrange(1, len(sentences))
    context = " ".join(sentences[max(0, at - context_sentences) : at])
    options = [sentences[at]]
    while len(options) < N_OPTIONS:
        _, others = prose[rng.randrange(len(prose))]
        candidate = others[rng.randrange(len(others))]
        # several topics repeat whole paragraphs: a wrong option must not occur in this topic
        if candidate not in _sentences_of(topic) and candidate not in options:
            options.append(candidate)
    rng.shuffle(options)
    return context, options, options.index(sentences[at]) + 1, topic


@cache
def _sentences_of(topic: str) -> frozenset[str]:
    return frozenset(sentence for name, kept in passages() if name == topic for sentence in kept)
