"""How long the safe evaluator of Countdown answers takes on hostile and malformed answers.

The tests check that each is refused without building a large number (memory, which does not
depend on the machine); this times them, which does:

    python benchmarks/safe_arith.py [--repeat 20]

One row per input: the median and the slowest of `--repeat` calls, the peak memory of one, and
whether it was refused (None) or evaluated.
"""

from __future__ import annotations

import argparse
import statistics
import time
import tracemalloc

from esforget.tasks.safe_arith import safe_eval

HOSTILE = {
    "power tower": "9**9**9**9",
    "large power": "10**100",
    "fraction powers": "(((1/99)**64)**64)**64",
    "deep brackets": "(" * 5000 + "1" + ")" * 5000,
    "long sum": "1+" * 10_000 + "1",
    "attribute access": "(1).__class__",
    "a Countdown answer": "(73 + (78 / (24 - 21)))",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    print(f"{'input':<20}{'chars':>8}{'median µs':>12}{'max µs':>10}{'peak KiB':>10}  result")
    for name, text in HOSTILE.items():
        seconds = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            value = safe_eval(text)
            seconds.append(time.perf_counter() - started)
        tracemalloc.start()
        safe_eval(text)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        print(
            f"{name:<20}{len(text):>8}{1e6 * statistics.median(seconds):>12.1f}{1e6 * max(seconds):>10.1f}"
            f"{peak / 1024:>10.1f}  {'refused' if value is None else 'a value'}"
        )


if __name__ == "__main__":
    main()
