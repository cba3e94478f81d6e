"""What the one scorer of ES fitness, validation and retention counts as correct."""

from esforget.core.models import load_tokenizer
from esforget.decoding.greedy_scorer import GreedyScorer
from esforget.tasks import make_frame


def test_a_reply_whose_reward_reaches_the_threshold_counts_as_correct(micro_model_dir):
    """A multiple-choice reply naming the right option has reward 1.0, exactly the threshold."""
    tokenizer = load_tokenizer(micro_model_dir)
    rows = make_frame(
        [{"id": str(i), "prompt": "Which is 1+1?", "ground_truth": truth, "info": {}} for i, truth in enumerate("23")]
    )
    scorer = GreedyScorer(tokenizer, rows, "choice", 4, batch_size=2)
    replies = [
        tokenizer("2", add_special_tokens=False)["input_ids"],
        tokenizer("1", add_special_tokens=False)["input_ids"],
    ]

    scored = scorer._scored(replies)

    assert (scored.replies, scored.rewards, scored.correct) == (["2", "1"], [1.0, 0.0], [True, False])
    assert scored.accuracy == 0.5
    assert scored.generated_tokens == sum(map(len, replies))
