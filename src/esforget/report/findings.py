"""The report's answers: each question of the study, the comparison that answers it, its 95 %
interval, and a verdict read off the interval — generated from the tables, never written by
hand, so that the page can only say what its numbers support.

Input: one row per (run, checkpoint, prior task, probe) — `summaries.checkpoint_table` builds it —
with
the new-task accuracy (authors' probe), the prior-task accuracy and its change from the base,
the update norm ‖ΔW‖_F and the KL from the base. The questions:

1. Does ES forget more than GRPO at matched new-task accuracy? Per probe and level: each run's
   prior-task change where its new-task accuracy first reaches base + level
   (`statistics.at_level`); ES runs against GRPO runs, Welch's interval of the difference.
   Runs that never reach a level are counted.
2. Does forgetting follow the update norm within each method? Per method: each run's OLS
   slope of prior-task change on ‖ΔW‖_F over its checkpoints, mean and t interval over seeds.
3. Across methods? One point per run (its final checkpoint): the slope of prior-task change on
   ‖ΔW‖_F over all runs, and ES's shift at equal norm (a regression on norm and an ES
   indicator) — inconclusive where ES's and GRPO's norms do not overlap.
4. Does the answer depend on the probe? Question 1's verdicts compared across probes.
5. Do ES's prior-task losses recover by the end? Per ES method: what came back of each run's
   deepest dip by its last checkpoint, mean and t interval over the runs that dipped.
6. Which methods forget less than plain ES at matched new-task accuracy? Where the config names
   the plain ES (`analysis.plain_es`): every other method against it, as question 1 compares
   ES with GRPO.

Verdicts: *supported* when the interval excludes zero on the side the question claims;
*not supported* when it excludes zero on the other side, or (for accuracy differences) lies
within ± `NEGLIGIBLE` of it; *inconclusive at this sample* otherwise, and always without an
interval (one seed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import polars as pl

from esforget.core.statistics import Estimate, difference_interval, mean_interval, shift_at_equal_x, slope_interval
from esforget.report.summaries import RUN, matched_changes, run_dips, run_slopes

LEVELS = (0.05, 0.10)
"""New-task accuracy gains over the base at which forgetting is compared (question 1)."""
NEGLIGIBLE = 0.01
"""An accuracy difference whose whole interval lies within ± this (1 point) is no difference."""
SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE = "supported", "not supported", "inconclusive at this sample"


@dataclass(frozen=True)
class Finding:
    question: str
    comparison: str
    estimate: Estimate | None  # None: a verdict about other findings (question 4)
    verdict: str
    note: str = ""
    prior_task: str = ""
    probe: str = ""
    level: float | None = None
    slope: bool = False  # a slope (two significant digits), not points (one decimal)

    def sentence(self) -> str:
        measured = "" if self.estimate is None else f": {_interval_text(self.estimate, self.slope)}"
        return f"{self.comparison}{measured} — {self.verdict}" + (f" ({self.note})" if self.note else "")


def verdict(estimate: Estimate, claimed_sign: int, negligible: float = 0.0) -> str:
    """Read a verdict off an interval for a claim that the value has `claimed_sign` (±1). An
    interval wholly within ± `negligible` is no effect worth the name, whichever its side."""
    if not estimate.has_interval:
        return INCONCLUSIVE
    low, high = sorted((claimed_sign * estimate.low, claimed_sign * estimate.high))
    if negligible > 0 and -negligible < low and high < negligible:
        return NOT_SUPPORTED
    if low > 0:
        return SUPPORTED
    if high < 0:
        return NOT_SUPPORTED
    return INCONCLUSIVE


def _interval_text(e: Estimate, slope: bool = False) -> str:
    """Points to one decimal, slopes to two significant digits, the interval as its estimate."""
    if e.n == 0 or e.value != e.value:
        return "no data"
    shown = _two_significant if slope else (lambda x: f"{x:+.1f}")
    if not e.has_interval:
        return f"{shown(e.value)} (n = {e.n}, no interval)"
    return f"{shown(e.value)} (95 % interval {shown(e.low)} to {shown(e.high)}; n = {e.n})"


def _two_significant(x: float) -> str:
    """`x` rounded to two significant digits, written without an exponent: +0.012, -120."""
    if x == 0 or x != x or abs(x) == float("inf"):
        return f"{x:+g}"
    decimals = 1 - math.floor(math.log10(abs(x)))
    return f"{round(x, decimals):+.{max(decimals, 0)}f}"


def forgetting_at_matched_accuracy(table: pl.DataFrame) -> list[Finding]:
    """Question 1, per prior task, probe and level."""
    found = []
    matched_all = matched_changes(table, LEVELS)
    for level in LEVELS:
        matched = matched_all.filter(pl.col("level") == level)
        for (task, probe), group in matched.group_by("prior_task", "probe", maintain_order=True):
            es, grpo = (group.filter(pl.col("algorithm") == a) for a in ("es", "grpo"))
            reached = {name: part["prior_change"].drop_nulls().to_list() for name, part in (("ES", es), ("GRPO", grpo))}
            estimate = difference_interval(reached["ES"], reached["GRPO"])
            unreached = ", ".join(
                f"{name} {part['prior_change'].null_count()} of {part.height}"
                for name, part in (("ES", es), ("GRPO", grpo))
            )
            found.append(
                Finding(
                    question="Does ES forget more than GRPO at matched new-task accuracy?",
                    comparison=(
                        f"{task} ({probe}) at base + {level:.0%} on the new task: ES − GRPO change in prior-task "
                        "accuracy, points"
                    ),
                    estimate=_points(estimate),
                    verdict=verdict(estimate, -1, NEGLIGIBLE),
                    note=f"runs that never reached the level: {unreached}",
                    prior_task=task,
                    probe=probe,
                    level=level,
                )
            )
    return found


def forgetting_follows_norm_within_methods(table: pl.DataFrame, probe: str = "generative") -> list[Finding]:
    """Question 2: per method and prior task, the per-run slope of prior-task change (points)
    on ‖ΔW‖_F, mean over seeds."""
    found = []
    slopes = run_slopes(table.filter(pl.col("probe") == probe), "fro_norm")
    for (method, task), group in slopes.group_by("method", "prior_task", maintain_order=True):
        estimate = mean_interval([s for s in group["slope"] if s == s])
        found.append(
            Finding(
                question="Does forgetting follow the update norm within each method?",
                comparison=f"{method}, {task} ({probe}): slope of prior-task change on ‖ΔW‖_F, points per unit norm",
                estimate=estimate,
                verdict=verdict(estimate, -1),
                prior_task=task,
                probe=probe,
                slope=True,
            )
        )
    return found


def forgetting_follows_norm_across_methods(table: pl.DataFrame, probe: str = "generative") -> list[Finding]:
    """Question 3: over every run's final checkpoint, per prior task."""
    found = []
    final = table.filter((pl.col("probe") == probe) & (pl.col("step") == pl.col("step").max().over(RUN)))
    for (task,), group in final.group_by("prior_task", maintain_order=True):
        norm, change = group["fro_norm"].to_list(), [100 * c for c in group["prior_change"]]
        slope = slope_interval(norm, change)
        found.append(
            Finding(
                question="Does forgetting follow the update norm across methods?",
                comparison=f"{task} ({probe}), final checkpoints of all runs: slope of prior-task change on ‖ΔW‖_F, "
                "points per unit norm",
                estimate=slope,
                verdict=verdict(slope, -1),
                prior_task=task,
                probe=probe,
                slope=True,
            )
        )
        is_es = [a == "es" for a in group["algorithm"]]
        shift = shift_at_equal_x(norm, change, is_es)
        es_norms = [n for n, e in zip(norm, is_es, strict=True) if e]
        grpo_norms = [n for n, e in zip(norm, is_es, strict=True) if not e]
        overlap = bool(
            es_norms and grpo_norms and min(es_norms) <= max(grpo_norms) and min(grpo_norms) <= max(es_norms)
        )
        found.append(
            Finding(
                question="Does ES forget more than GRPO at equal update norm?",
                comparison=(
                    f"{task} ({probe}), final checkpoints: ES's shift in prior-task change at equal ‖ΔW‖_F, points"
                ),
                # outside the norms both methods reached, the shift is an extrapolation the
                # data cannot support: no number is shown
                estimate=shift if overlap else None,
                verdict=verdict(shift, -1, 100 * NEGLIGIBLE) if overlap else INCONCLUSIVE,
                note="" if overlap else "ES's and GRPO's update norms do not overlap: no comparison at equal norm",
                prior_task=task,
                probe=probe,
            )
        )
    return found


def probe_dependence(matched: list[Finding]) -> list[Finding]:
    """Question 4: whether question 1's decisive verdicts disagree between probes, per prior
    task and level: *supported* if one probe's verdict is decisive one way and another's the
    other; *not supported* if every probe reaches the same decisive verdict."""
    found = []
    groups: dict[tuple[str, float], list[Finding]] = {}
    for finding in matched:
        groups.setdefault((finding.prior_task, finding.level), []).append(finding)
    for (task, level), findings in groups.items():
        verdicts = {f.verdict for f in findings}
        if len(verdicts - {INCONCLUSIVE}) > 1:
            answer = SUPPORTED
        elif len(findings) > 1 and len(verdicts) == 1 and INCONCLUSIVE not in verdicts:
            answer = NOT_SUPPORTED
        else:
            answer = INCONCLUSIVE
        found.append(
            Finding(
                question="Does the answer depend on the probe?",
                comparison=f"question 1 on {task} at base + {level:.0%}, probe by probe",
                estimate=None,
                verdict=answer,
                note="; ".join(f"{f.probe}: {f.verdict}" for f in findings),
                prior_task=task,
                level=level,
            )
        )
    return found


def es_losses_recover(table: pl.DataFrame, probe: str = "generative") -> list[Finding]:
    """Question 5 (anchored weight decay's claim, arXiv 2605.30148: most of ES's prior-task loss
    is transient drift): per ES method and prior task, what came back of each run's deepest dip
    by its last checkpoint (final − deepest change, points), mean over seeds. Only runs that dipped
    count; a dip that comes back by more than `NEGLIGIBLE` supports the claim."""
    found = []
    dips = run_dips(table.filter(pl.col("probe") == probe)).filter(
        (pl.col("algorithm") == "es") & (pl.col("deepest") < 0)
    )
    for (method, task), group in dips.group_by("method", "prior_task", maintain_order=True):
        estimate = mean_interval(group["recovered"].to_list())
        final = mean_interval(group["final"].to_list())
        found.append(
            Finding(
                question="Do ES's prior-task losses recover by the end of training?",
                comparison=f"{method} on {task} ({probe}): final minus deepest prior-task change, points",
                estimate=estimate,
                verdict=verdict(estimate, +1, 100 * NEGLIGIBLE),
                note=f"deepest {group['deepest'].mean():+.1f}, final {final.value:+.1f} points, mean over the "
                f"{group.height} runs that dipped",
                prior_task=task,
                probe=probe,
            )
        )
    return found


def variants_against_plain(table: pl.DataFrame, plain: str, probe: str = "generative") -> list[Finding]:
    """Question 6: per method other than the plain ES `plain` (`analysis.plain_es`), prior task
    and level: the method's prior-task change at matched new-task accuracy minus plain ES's,
    Welch's interval over their seeds. The claim is that the method forgets less (a positive
    difference); within ± `NEGLIGIBLE` it makes no difference."""
    found = []
    matched = matched_changes(table.filter(pl.col("probe") == probe), LEVELS)
    for level in LEVELS:
        at_level = matched.filter(pl.col("level") == level)
        for (task,), group in at_level.group_by("prior_task", maintain_order=True):
            reference = group.filter(pl.col("method") == plain)["prior_change"]
            for method in group["method"].unique(maintain_order=True).to_list():
                if method == plain:
                    continue
                changes = group.filter(pl.col("method") == method)["prior_change"]
                estimate = difference_interval(changes.drop_nulls().to_list(), reference.drop_nulls().to_list())
                found.append(
                    Finding(
                        question="Which methods forget less than plain ES at matched new-task accuracy?",
                        comparison=(
                            f"{method} − {plain} on {task} ({probe}) at base + {level:.0%} on the new task: "
                            "change in prior-task accuracy, points"
                        ),
                        estimate=_points(estimate),
                        verdict=verdict(estimate, +1, NEGLIGIBLE),
                        note=f"runs that never reached the level: {method} {changes.null_count()} of "
                        f"{changes.len()}, {plain} {reference.null_count()} of {reference.len()}",
                        prior_task=task,
                        probe=probe,
                        level=level,
                    )
                )
    return found


def all_findings(table: pl.DataFrame, plain_es: str | None = None, plain_grpo: str | None = None) -> list[Finding]:
    """Every question's findings. Where the config names a plain ES and a reference GRPO
    (`analysis.plain_es`, `analysis.compare_to`), question 1 compares those two methods only
    (the other methods are variants, compared with plain ES by question 6); otherwise every
    method of each algorithm."""
    plain = [m for m in (plain_es, plain_grpo) if m is not None]
    algorithm_of = dict(table.select("method", "algorithm").unique().iter_rows())
    kept = [m for m in algorithm_of if algorithm_of[m] not in {algorithm_of.get(p) for p in plain} or m in plain]
    matched = forgetting_at_matched_accuracy(table.filter(pl.col("method").is_in(kept)))
    return [
        *matched,
        *forgetting_follows_norm_within_methods(table),
        *forgetting_follows_norm_across_methods(table),
        *probe_dependence(matched),
        *es_losses_recover(table),
        *(variants_against_plain(table, plain_es) if plain_es is not None else []),
    ]


def _points(e: Estimate) -> Estimate:
    return Estimate(100 * e.value, 100 * e.low, 100 * e.high, e.n)
