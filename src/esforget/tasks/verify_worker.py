"""math-verify in a worker process of bounded memory and time.

math-verify turns an answer into a sympy expression and compares; an answer such as
`\\boxed{(x+1)^{100000}}` took 590 MB and 5 s of the grading process. Grading runs here instead:
one long-lived worker process (`main` below), its address space capped with
`RLIMIT_AS`, each comparison given at most a fixed time. A comparison that runs out of either is
no equivalence, and the worker that overran is replaced.

Why a subprocess and not `multiprocessing`: its spawned workers import the parent's main module
again, which for a Snakemake `script:` is the whole stage; a forked worker would share the
parent's address space, model included, so no memory cap could be set below it.
"""

from __future__ import annotations

import json
import resource
import select
import subprocess
import sys

READY = "ready"
STARTUP_SECONDS = 60.0
"""Longest a worker may take to import math-verify (sympy) and say it is ready."""


class Verifier:
    """`verifier(gold, guess)`: whether math-verify finds the two LaTeX answers equivalent."""

    def __init__(self, seconds: float, memory_bytes: int):
        self.seconds, self.memory_bytes = seconds, memory_bytes
        self.process: subprocess.Popen | None = None

    def __call__(self, gold: str, guess: str) -> bool:
        if self.process is None or self.process.poll() is not None:
            self._start()
        self.process.stdin.write(json.dumps([gold, guess]) + "\n")
        self.process.stdin.flush()
        answered, _, _ = select.select([self.process.stdout], [], [], self.seconds)
        line = self.process.stdout.readline() if answered else ""
        if not line:  # out of time, or the worker died (out of memory)
            self.close()
            return False
        return json.loads(line)

    def _start(self) -> None:
        """A fresh worker, once it has said it is ready: one that cannot even import math-verify
        within its limits is an error, not a grader that finds nothing equivalent."""
        self.process = subprocess.Popen(
            [sys.executable, "-c", "from esforget.tasks.verify_worker import main; main()", str(self.memory_bytes)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        started, _, _ = select.select([self.process.stdout], [], [], STARTUP_SECONDS)
        if not started or self.process.stdout.readline().strip() != READY:
            self.close()
            raise RuntimeError(
                f"the math-verify worker did not start within {self.memory_bytes >> 20} MiB of address space "
                f"and {STARTUP_SECONDS:g} s (its error is above)"
            )

    def close(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


def main() -> None:
    """The worker: one JSON pair of answers per input line, one JSON verdict per output line."""
    limit = int(sys.argv[1])
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    from math_verify import parse, verify  # heavy import (sympy), only here

    print(READY, flush=True)
    for line in sys.stdin:
        gold_text, guess_text = json.loads(line)
        try:
            gold, guess = parse(gold_text), parse(guess_text)
            equivalent = bool(gold) and bool(guess) and bool(verify(gold, guess))
        except MemoryError:
            equivalent = False
        print(json.dumps(equivalent), flush=True)


if __name__ == "__main__":
    main()
