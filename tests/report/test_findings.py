"""The findings section says what small tables with a known answer support."""

import polars as pl
import pytest

from esforget.core.statistics import Estimate
from esforget.report.findings import (
    INCONCLUSIVE,
    NOT_SUPPORTED,
    SUPPORTED,
    Finding,
    es_losses_recover,
    forgetting_at_matched_accuracy,
    forgetting_follows_norm_across_methods,
    forgetting_follows_norm_within_methods,
    probe_dependence,
)
from esforget.report.summaries import checkpoint_table, dip_table, run_dips

STEPS = [0, 10, 20, 30]
NEW = [0.20, 0.26, 0.32, 0.40]  # base + 6, + 12, + 20 points


def tables(runs: dict[tuple[str, str, int], dict]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(retention, norms) of runs {(algorithm, method, seed): {"prior": {probe: [acc per step]},
    "norm": [‖ΔW‖ per step], "new": [acc per step]}} on new task `cd`, prior task `arith`."""
    retention, norms = [], []
    for (algorithm, method, seed), run in runs.items():
        key = {"model": "tiny", "method": method, "algorithm": algorithm, "train_task": "cd", "seed": seed}
        for i, step in enumerate(STEPS):
            new = run.get("new", NEW)[i]
            retention.append(
                {**key, "step": step, "eval_task": "cd", "probe": "generative", "accuracy": new, "kl_from_base": None}
            )
            for probe, accuracy in run["prior"].items():
                retention.append(
                    {
                        **key,
                        "step": step,
                        "eval_task": "arith",
                        "probe": probe,
                        "accuracy": accuracy[i],
                        "kl_from_base": 0.1 * i,
                    }
                )
            norms.append(
                {k: key[k] for k in ("model", "method", "train_task", "seed")}
                | {"step": step, "fro_norm": run["norm"][i]}
            )
    return pl.DataFrame(retention), pl.DataFrame(norms)


def forgetting(total: float, jitter: float = 0.0) -> list[float]:
    """Prior-task accuracy falling linearly by `total` from 0.90 over the run."""
    return [0.90 - total * i / 3 + (jitter if i else 0.0) for i in range(4)]


def study(es_loss: float, grpo_loss: float, seeds=(0, 1, 2), loglik_es_loss: float | None = None) -> pl.DataFrame:
    runs = {}
    for seed in seeds:
        jitter = 0.002 * (seed - 1)
        es_prior = {"generative": forgetting(es_loss, jitter)}
        grpo_prior = {"generative": forgetting(grpo_loss, -jitter)}
        if loglik_es_loss is not None:
            es_prior["loglikelihood"] = forgetting(loglik_es_loss, jitter)
            grpo_prior["loglikelihood"] = forgetting(grpo_loss, -jitter)
        runs[("es", "es", seed)] = {"prior": es_prior, "norm": [0, 3 + seed, 6 + seed, 9 + seed]}
        runs[("grpo", "grpo", seed)] = {"prior": grpo_prior, "norm": [0, 0.3, 0.6, 0.9 + 0.1 * seed]}
    return checkpoint_table(*tables(runs), prior_tasks=["arith"])


def test_the_checkpoint_table_pairs_accuracies_norms_and_the_change_from_the_base():
    table = study(0.12, 0.0)
    es0 = table.filter((pl.col("method") == "es") & (pl.col("seed") == 0)).sort("step")
    assert es0["prior_change"].to_list() == pytest.approx([0.0, -0.04 - 0.002, -0.08 - 0.002, -0.12 - 0.002])
    assert es0["fro_norm"].to_list() == [0, 3, 6, 9] and es0["new_accuracy"].to_list() == NEW


def test_es_forgetting_more_at_matched_accuracy_is_supported_and_the_sentence_says_so():
    findings = forgetting_at_matched_accuracy(study(es_loss=0.12, grpo_loss=0.0))
    five, ten = findings  # base + 5 points, base + 10 points
    # +5 points: between steps 0 and 10 (+6): 5/6 of the first third of 12 points lost, ≈ −3.3
    assert five.estimate.value == pytest.approx(-100 * 0.04 * 5 / 6, abs=0.3)
    assert five.verdict == ten.verdict == SUPPORTED
    assert five.sentence().startswith("arith (generative) at base + 5% on the new task: ES − GRPO change in prior-task")
    assert five.sentence().endswith("— supported (runs that never reached the level: ES 0 of 3, GRPO 0 of 3)")


def test_equal_forgetting_is_not_supported_and_one_seed_is_inconclusive():
    assert {f.verdict for f in forgetting_at_matched_accuracy(study(0.06, 0.06))} == {NOT_SUPPORTED}
    one_seed = forgetting_at_matched_accuracy(study(0.12, 0.0, seeds=(0,)))
    assert {f.verdict for f in one_seed} == {INCONCLUSIVE}
    assert "(n = 2, no interval)" in one_seed[0].sentence()


def test_runs_that_never_reach_a_level_are_counted():
    runs = {
        ("es", "es", s): {
            "prior": {"generative": forgetting(0.1)},
            "norm": [0, 1, 2, 3],
            "new": [0.2, 0.21, 0.22, 0.23],
        }
        for s in (0, 1)
    }
    runs |= {("grpo", "grpo", s): {"prior": {"generative": forgetting(0.0)}, "norm": [0, 1, 2, 3]} for s in (0, 1)}
    five = forgetting_at_matched_accuracy(checkpoint_table(*tables(runs), ["arith"]))[0]
    assert five.verdict == INCONCLUSIVE and five.note == "runs that never reached the level: ES 2 of 2, GRPO 0 of 2"


def test_forgetting_that_grows_with_the_norm_within_a_method_is_supported():
    within = {f.comparison.split(",")[0]: f for f in forgetting_follows_norm_within_methods(study(0.12, 0.0))}
    assert within["es"].verdict == SUPPORTED and within["es"].estimate.value < 0
    assert within["grpo"].verdict == INCONCLUSIVE  # flat: zero slope in every seed, no spread


def test_no_comparison_at_equal_norm_where_the_norms_do_not_overlap():
    across, at_equal_norm = forgetting_follows_norm_across_methods(study(0.12, 0.0))
    assert across.verdict == SUPPORTED  # bigger updates, more forgetting
    assert at_equal_norm.verdict == INCONCLUSIVE and "do not overlap" in at_equal_norm.note
    # no extrapolated shift is printed: the sentence carries no number after its comparison
    assert at_equal_norm.estimate is None
    assert at_equal_norm.sentence() == f"{at_equal_norm.comparison} — {INCONCLUSIVE} ({at_equal_norm.note})"


@pytest.mark.parametrize(
    "slope, value, low, high, text",
    [
        (False, -1.2345, -3.25, 0.849, "-1.2 (95 % interval -3.2 to +0.8; n = 3)"),
        (False, 12.0, 10.05, 13.96, "+12.0 (95 % interval +10.1 to +14.0; n = 3)"),
        (True, -0.012345, -0.0251, 0.00049, "-0.012 (95 % interval -0.025 to +0.00049; n = 3)"),
        (True, -123.4, -310.0, 0.0, "-120 (95 % interval -310 to +0; n = 3)"),
    ],
)
def test_points_are_shown_to_one_decimal_and_slopes_to_two_significant_digits(slope, value, low, high, text):
    finding = Finding("Q?", "a comparison", Estimate(value, low, high, 3), SUPPORTED, slope=slope)
    assert finding.sentence() == f"a comparison: {text} — {SUPPORTED}"


def test_a_probe_that_disagrees_makes_the_answer_depend_on_the_probe():
    findings = forgetting_at_matched_accuracy(study(0.12, 0.0, loglik_es_loss=-0.06))  # ES gains by log-likelihood
    by_probe = {(f.probe, f.level): f.verdict for f in findings}
    assert by_probe[("generative", 0.05)] == SUPPORTED and by_probe[("loglikelihood", 0.05)] == NOT_SUPPORTED
    dependence = probe_dependence(findings)
    assert {d.verdict for d in dependence} == {SUPPORTED}
    assert dependence[0].sentence() == (
        "question 1 on arith at base + 5%, probe by probe — supported "
        "(generative: supported; loglikelihood: not supported)"
    )


def dipping(depths: dict[int, list[float]]) -> pl.DataFrame:
    """Three seeds each of ES and GRPO whose prior accuracy (from 0.90) follows `depths[seed]`,
    in points below the base at steps 10, 20, 30; GRPO never moves."""
    runs = {}
    for seed, depth in depths.items():
        runs[("es", "es", seed)] = {
            "prior": {"generative": [0.90] + [0.90 - d / 100 for d in depth]},
            "norm": [0, 1, 2, 3],
        }
        runs[("grpo", "grpo", seed)] = {"prior": {"generative": [0.90] * 4}, "norm": [0, 1, 2, 3]}
    return checkpoint_table(*tables(runs), prior_tasks=["arith"])


def test_a_runs_dip_is_its_deepest_change_where_it_was_and_what_came_back():
    dips = run_dips(dipping({0: [4.0, 10.0, 2.0], 1: [6.0, 6.0, 6.0], 2: [1.0, 2.0, 3.0]}))
    es = dips.filter(pl.col("algorithm") == "es").sort("seed")
    assert es["deepest"].to_list() == pytest.approx([-10.0, -6.0, -3.0])
    assert es["deepest_step"].to_list() == [20, 10, 30]  # the first of equal dips
    assert es["final"].to_list() == pytest.approx([-2.0, -6.0, -3.0])
    assert es["recovered"].to_list() == pytest.approx([8.0, 0.0, 0.0])
    grpo = dips.filter(pl.col("algorithm") == "grpo")
    assert grpo["deepest"].to_list() == [0.0] * 3 and grpo["recovered"].to_list() == [0.0] * 3
    table = dip_table(dipping({0: [4.0, 10.0, 2.0], 1: [6.0, 6.0, 6.0], 2: [1.0, 2.0, 3.0]}))
    assert table.filter(pl.col("method") == "es")["recovered"].to_list() == pytest.approx([8 / 3])
    assert table.filter(pl.col("method") == "es")["median_deepest_step"].to_list() == [20.0]


def test_losses_that_come_back_by_the_end_support_transient_drift_and_lasting_ones_do_not():
    transient = es_losses_recover(dipping({0: [6.0, 10.0, 1.0], 1: [5.0, 9.0, 0.5], 2: [7.0, 11.0, 1.5]}))
    [finding] = transient  # one ES method, one prior task; GRPO is not asked
    assert finding.estimate.value == pytest.approx(9.0) and finding.estimate.n == 3
    assert finding.verdict == SUPPORTED
    assert "final -1.0 points" in finding.note
    lasting = es_losses_recover(dipping({0: [6.0, 10.0, 10.0], 1: [5.0, 9.0, 9.0], 2: [7.0, 11.0, 11.0]}))
    assert lasting[0].estimate.value == 0.0 and lasting[0].verdict == NOT_SUPPORTED
    assert es_losses_recover(dipping({0: [0.0, 0.0, 0.0]})) == []  # no run dipped: nothing to ask


def test_an_interval_wholly_within_the_negligible_band_is_no_effect_even_on_the_claimed_side():
    from esforget.report.findings import verdict

    assert verdict(Estimate(0.4, 0.2, 0.6, 3), +1, negligible=1.0) == NOT_SUPPORTED
    assert verdict(Estimate(0.4, 0.2, 0.6, 3), +1) == SUPPORTED  # no band: any side
    assert verdict(Estimate(1.5, 0.5, 2.5, 3), +1, negligible=1.0) == SUPPORTED  # it reaches past the band
    assert verdict(Estimate(-0.4, -0.6, -0.2, 3), -1, negligible=1.0) == NOT_SUPPORTED


def with_a_variant(variant_loss: float) -> pl.DataFrame:
    """Plain ES losing 12 points, a variant losing `variant_loss` and GRPO losing none, three seeds."""
    runs = {}
    for seed in (0, 1, 2):
        jitter = 0.002 * (seed - 1)
        runs[("es", "es", seed)] = {"prior": {"generative": forgetting(0.12, jitter)}, "norm": [0, 3, 6, 9]}
        runs[("es", "es_variant", seed)] = {
            "prior": {"generative": forgetting(variant_loss, -jitter)},
            "norm": [0, 1, 2, 3],
        }
        runs[("grpo", "grpo", seed)] = {"prior": {"generative": forgetting(0.0, jitter)}, "norm": [0, 0.3, 0.6, 0.9]}
    return checkpoint_table(*tables(runs), prior_tasks=["arith"])


def test_a_variant_that_forgets_less_than_plain_es_at_matched_accuracy_is_named():
    from esforget.report.findings import variants_against_plain

    found = variants_against_plain(with_a_variant(0.03), "es")
    five = [f for f in found if f.level == 0.05 and f.comparison.startswith("es_variant")]
    # base + 5 points is reached 5/6 of the way to step 10: a loss of total × 5/18 there
    assert five[0].estimate.value == pytest.approx(100 * (0.12 - 0.03) * 5 / 18, abs=0.1)
    assert five[0].verdict == SUPPORTED and five[0].estimate.n == 6
    assert {f.comparison.split(" − ")[0] for f in found} == {"es_variant", "grpo"}  # every other method
    same = variants_against_plain(with_a_variant(0.12), "es")
    assert [f.verdict for f in same if f.comparison.startswith("es_variant")] == [NOT_SUPPORTED, NOT_SUPPORTED]


def test_with_a_plain_es_and_a_reference_grpo_question_one_compares_those_two_only():
    from esforget.report.findings import all_findings

    table = with_a_variant(0.03)
    pooled = [f for f in all_findings(table) if f.question.startswith("Does ES forget more")]
    plain = [f for f in all_findings(table, "es", "grpo") if f.question.startswith("Does ES forget more")]
    assert pooled[0].estimate.n == 9 and plain[0].estimate.n == 6  # the variant's runs left out
    assert any(f.question.startswith("Which methods forget less") for f in all_findings(table, "es", "grpo"))
    assert not any(f.question.startswith("Which methods forget less") for f in all_findings(table))
