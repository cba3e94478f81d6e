"""Mutation score of the modules the study's numbers come from: a measure of the tests, not a
CI gate. Run through `benchmarks/mutation.sh`, which sets the environment.

mutmut (configured in pyproject.toml, `[tool.mutmut]`) copies `src/` to `mutants/`, plants one
small bug per mutant (an operator flipped, a constant changed, an argument dropped …), records
which fast test reaches which function, and runs each mutant against only those tests. A
mutant is *killed* when a test fails (or times out), *survives* when all pass, and has *no
tests* when none reaches it (counted as surviving here: a bug nothing runs is a bug no test
catches).

All mutants do not fit in an hour on a 2-core machine (a mutant of the ES loop reruns the
kill-and-resume and two-process tests), so by default a seeded random sample is run:

    benchmarks/mutation.sh                       # sample of 400, seed 0
    benchmarks/mutation.sh --sample 0            # every mutant (hours)
    benchmarks/mutation.sh --sample 600 --seed 3

It prints the score per module, overall, and with the mutants judged equivalent (listed with
the reason in `benchmarks/mutation_equivalent.txt`) left out; the surviving mutants' diffs go
to `mutants/survivors.txt`.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from mutmut.stats import status_by_exit_code

ROOT = Path(__file__).resolve().parents[1]
EQUIVALENT = ROOT / "benchmarks" / "mutation_equivalent.txt"
ANCHOR = "esforget.core.checkpoints.x_partial_dir*"
"""A one-line function whose few mutants the first pass runs: mutmut generates every mutant
and records which test reaches which function only as part of a run."""


def mutmut(*args: str, children_mutated: bool = False) -> None:
    """Run mutmut. `children_mutated`: processes the tests start (torchrun workers, a killed and
    resumed run) import the mutated copy too, so that the mutant under test (which reaches them
    in MUTANT_UNDER_TEST) runs in every process of a test. Not while mutmut maps tests to
    functions: in that pass the mutated code records where it is called from, which fails in a
    child started elsewhere (snakemake in a temporary folder); the map is of the pytest process
    only, so a function that only a child process calls is reached by no test."""
    env = dict(os.environ)
    if children_mutated:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "mutants" / "src"), env.get("PYTHONPATH")]))
    subprocess.run([sys.executable, "-m", "mutmut", *args], cwd=ROOT, check=True, env=env)


def outcomes() -> dict[str, int | None]:
    """Mutant name → mutmut's exit code (None: not run), from its per-file records."""
    found = {}
    for meta in sorted((ROOT / "mutants").rglob("*.py.meta")):
        found.update(json.loads(meta.read_text())["exit_code_by_key"])
    return found


def module_of(name: str) -> str:
    """`esforget.tasks.countdown.x_reward__mutmut_3` → `tasks.countdown`."""
    return name.split(".x")[0].removeprefix("esforget.")


def equivalent_mutants() -> dict[str, str]:
    """Mutants judged equivalent (no input can tell them from the original): name → reason."""
    judged = {}
    for line in EQUIVALENT.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, reason = line.partition("  ")
            judged[name.strip()] = reason.strip()
    return judged


def status(code: int | None, judged_equivalent: bool) -> str:
    """killed (a test failed or timed out), survived, equivalent, no tests, or not run (a run
    stopped before this mutant), from mutmut's own reading of its exit codes."""
    verdict = status_by_exit_code[code]
    if verdict in ("killed", "timeout"):
        return "killed"
    if verdict == "not checked":
        return "not run"
    if verdict == "survived" and judged_equivalent:
        return "equivalent"
    return verdict


def report(sample: list[str], seconds: float | None) -> None:
    results = outcomes()
    judged = equivalent_mutants()
    rows: dict[str, Counter] = {}
    survivors = []
    for name in sample:
        verdict = status(results[name], name in judged)
        rows.setdefault(module_of(name), Counter())[verdict] += 1
        if verdict in ("survived", "no tests"):
            survivors.append(name)
    total = sum(rows.values(), Counter())
    print(
        f"\n{'module':<22}{'mutants':>8}{'killed':>8}{'survived':>9}{'no tests':>9}{'equiv.':>7}{'not run':>8}"
        f"{'score':>8}"
    )
    for module, count in [*sorted(rows.items()), ("all", total)]:
        judged_total = sum(count.values()) - count["equivalent"] - count["not run"]
        score = 100 * count["killed"] / judged_total if judged_total else float("nan")
        print(
            f"{module:<22}{sum(count.values()):>8}{count['killed']:>8}{count['survived']:>9}"
            f"{count['no tests']:>9}{count['equivalent']:>7}{count['not run']:>8}{score:>7.1f}%"
        )
    took = "" if seconds is None else f" in {seconds / 60:.1f} min"
    print(f"\nscore = killed ÷ (mutants run − equivalent); {len(sample)} mutants{took}")
    stale = sorted(set(judged) - set(results))
    if stale:
        print(f"note: {len(stale)} mutants in {EQUIVALENT.name} no longer exist (the code moved): {stale[:5]}")
    with open(ROOT / "mutants" / "survivors.txt", "w") as out:
        for name in survivors:
            shown = subprocess.run(
                [sys.executable, "-m", "mutmut", "show", name], cwd=ROOT, capture_output=True, text=True
            )
            out.write(shown.stdout + "\n")
    print(f"{len(survivors)} surviving mutants' diffs: mutants/survivors.txt")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sample", type=int, default=400, help="mutants to run, drawn at random; 0 = all")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sample")
    parser.add_argument("--keep", action="store_true", help="reuse mutants/ and its results (same code only)")
    parser.add_argument("--report", action="store_true", help="only report the sample's results so far")
    args = parser.parse_args()

    started = time.monotonic()
    if not (args.keep or args.report):
        shutil.rmtree(ROOT / "mutants", ignore_errors=True)
    if not (ROOT / "mutants").is_dir():
        mutmut("run", ANCHOR)  # generates all mutants, maps tests to functions
    names = sorted(outcomes())
    sample = names if args.sample == 0 else sorted(random.Random(args.seed).sample(names, min(args.sample, len(names))))
    if args.report:
        report(sample, seconds=None)
        return
    print(f"{len(names)} mutants over the configured modules; running {len(sample)} (seed {args.seed})")
    mutmut("run", *sample, children_mutated=True)
    report(sample, time.monotonic() - started)


if __name__ == "__main__":
    main()
