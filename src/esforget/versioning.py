"""Save and restore versions of the pipeline's outputs: git holds code and config, DVC the data
and results they made, and Snakemake is brought to see them as its own.

    python -m esforget.versioning save -m "message"   (make save MSG="message")
    python -m esforget.versioning restore REV           (make restore REV=…)

A version is code + config + the outputs they make, so `save` refuses while tracked files have
uncommitted changes, while any output the DAG declares is missing, or while Snakemake has work
left (outputs that do not belong to this code and config), then `dvc add`s `data/` and
`results/` (file times kept, so Snakemake does not see them as new), pushes them to the DVC
remote and commits the `.dvc` files.

`restore` checks out REV, pulls its outputs and then does what Snakemake cannot: DVC gives
restored files new modification times in no particular order, and Snakemake's bookkeeping
(`.snakemake/metadata`, which records the params each output was made with) is not versioned,
so on its own Snakemake would either rerun everything or, after `--touch`, trust outputs it
knows nothing about. So every restored output that records what made it is first checked
against the config — each split against its manifest (`check_prepared`), each run's
`run_config.json` against the run's method, seed and base — and any difference stops the
restore, naming the run and the key. Only then `snakemake --touch --forceall` stamps every
output in DAG order and records the current params, so a later config change reruns what it
should.

Why by hand: DVC versions files and Snakemake runs the DAG; neither knows the other's view of
what is current, and no tool bridges the two.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from esforget.config.load import DEFAULT_CONFIGFILES, load
from esforget.config.runs import all_runs, method_for_run
from esforget.core import layout
from esforget.core.checkpoints import RECORDED_ONLY, run_fingerprint
from esforget.core.files import read_json
from esforget.data.prepare import check_prepared
from esforget.data.sources import SPLITS
from esforget.train.methods import method_config

TRACKED = ("data", "results")
"""Output folders DVC versions, each as one `.dvc` file at the repository root."""

BOOKKEEPING = (".gitignore", ".dvcignore", *(f"{folder}.dvc" for folder in TRACKED))
"""Files a save may find changed: it commits them."""


class VersionError(RuntimeError):
    """A save or restore that would version, or trust, outputs this code and config did not make."""


def _run(*command: str, cwd: Path) -> str:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise VersionError(f"`{' '.join(command)}` failed (exit {done.returncode}):\n{done.stdout}{done.stderr}")
    return done.stdout


def _dvc(*args: str, cwd: Path) -> str:
    return _run(sys.executable, "-m", "dvc", *args, cwd=cwd)


def _snakemake(*args: str, configfiles: tuple[str, ...], cwd: Path) -> str:
    return _run(sys.executable, "-m", "snakemake", "--cores", "1", "--configfile", *configfiles, *args, cwd=cwd)


def _git(*args: str, cwd: Path) -> str:
    return _run("git", *args, cwd=cwd)


def uncommitted(root: Path) -> list[str]:
    """Tracked files with uncommitted changes, other than the bookkeeping a save commits."""
    lines = _git("status", "--porcelain", "--untracked-files=no", cwd=root).splitlines()
    return [line[3:] for line in lines if line[3:] not in BOOKKEEPING]


def pending_jobs(root: Path, configfiles: tuple[str, ...]) -> list[str]:
    """The jobs a dry run plans (rule names, with repeats), [] when everything is current."""
    plan = _snakemake("--dry-run", "--quiet", "rules", configfiles=configfiles, cwd=root)
    jobs = []
    for row in (line.split() for line in plan.splitlines()):
        if row[:1] == ["total"]:  # the end of the (first) job table
            break
        if len(row) == 2 and row[1].isdigit() and row[0] != "all":
            jobs += [row[0]] * int(row[1])
    return jobs


def missing_outputs(root: Path, configfiles: tuple[str, ...]) -> list[str]:
    """Every output the DAG declares that is not on disk. A dry run alone is not enough: it
    compares times, and after a killed job outputs downstream of it can be newer than the
    gap it left."""
    summary = _snakemake("--summary", "--quiet", configfiles=configfiles, cwd=root)
    return missing_in_summary(summary, root)


def missing_in_summary(summary: str, root: Path) -> list[str]:
    """The output files of a `snakemake --summary` table that do not exist under `root`."""
    rows = [line.split("\t") for line in summary.splitlines()]
    header = next((i for i, row in enumerate(rows) if row[:1] == ["output_file"]), None)
    if header is None:
        raise VersionError(f"snakemake --summary printed no table of outputs:\n{summary[-2000:]}")
    return [row[0] for row in rows[header + 1 :] if row and row[0] and not (root / row[0]).exists()]


def _files(root: Path) -> Iterator[Path]:
    for folder in TRACKED:
        for dirpath, _, filenames in os.walk(root / folder):
            yield from (Path(dirpath) / name for name in filenames)


def save(message: str, configfiles: tuple[str, ...] = DEFAULT_CONFIGFILES, root: str | Path = ".") -> str:
    """Version the current outputs with the commit that made them; returns the new commit."""
    root = Path(root).resolve()
    dirty = uncommitted(root)
    if dirty:
        raise VersionError(f"commit or stash these first, a version's outputs must match its code: {dirty}")
    missing = missing_outputs(root, configfiles)
    if missing:
        raise VersionError(
            f"{len(missing)} output(s) the workflow declares are missing, e.g. {missing[:3]}: "
            "run `snakemake` to make them before saving"
        )
    pending = pending_jobs(root, configfiles)
    if pending:
        raise VersionError(
            f"Snakemake has {len(pending)} job(s) to run ({', '.join(sorted(set(pending)))}): the outputs do not "
            "match this code and config yet; run `snakemake` first"
        )
    present = [folder for folder in TRACKED if (root / folder).is_dir()]
    # `dvc add` may rewrite files from its cache (new times): keep the times Snakemake compares
    times = {path: path.stat().st_mtime_ns for path in _files(root)}
    _dvc("add", *present, cwd=root)
    for path, mtime in times.items():
        os.utime(path, ns=(mtime, mtime))
    _dvc("push", cwd=root)
    _git("add", *(name for name in BOOKKEEPING if (root / name).exists()), cwd=root)
    _git("commit", "--quiet", "--allow-empty", "-m", message, cwd=root)
    return _git("rev-parse", "HEAD", cwd=root).strip()


def mismatches(config: dict, root: str | Path = ".") -> list[str]:
    """Restored outputs whose own records disagree with the config, one message each."""
    root = Path(root)
    found = []
    for task in config["tasks"]:
        for split in SPLITS:
            path = layout.split_path(config, task, split)
            if (root / path).exists():
                try:
                    check_prepared(root / path, config["tasks"][task], config["data_seed"])
                except (ValueError, FileNotFoundError) as err:
                    found.append(str(err))
    for run in all_runs(config):
        found += _run_mismatch(config, root, **run)
    return found


def _run_mismatch(config: dict, root: Path, model: str, method: str, task: str, seed: int) -> list[str]:
    run = layout.run_dir(config, model, method, task, seed)
    recorded_path = root / run / "run_config.json"
    if not recorded_path.exists():
        return []
    spec = method_for_run(config, model, method, task)
    base = f"{layout.base_dir(config, model)}/model"
    expected = json.loads(json.dumps(run_fingerprint(spec["algorithm"], method_config(method, spec), seed, base)))
    recorded = {k: v for k, v in read_json(recorded_path).items() if k not in RECORDED_ONLY}
    differing = sorted(k for k in expected.keys() | recorded.keys() if expected.get(k) != recorded.get(k))
    if not differing:
        return []
    values = ", ".join(f"{k}={recorded.get(k)!r} (config: {expected.get(k)!r})" for k in differing)
    return [f"{run} was trained with {values}"]


def restore(
    rev: str | None = None, configfiles: tuple[str, ...] = DEFAULT_CONFIGFILES, root: str | Path = "."
) -> list[str]:
    """Check out `rev` (default: stay), bring its outputs back and make Snakemake see them as
    current; returns what a dry run then plans (empty when the version was complete)."""
    root = Path(root).resolve()
    dirty = uncommitted(root)
    if dirty:
        raise VersionError(f"commit or stash these first, restoring checks out other versions of them: {dirty}")
    if rev is not None:
        _git("checkout", "--quiet", rev, cwd=root)
    tracked = [f"{folder}.dvc" for folder in TRACKED if (root / f"{folder}.dvc").exists()]
    stray = [folder for folder in TRACKED if f"{folder}.dvc" not in tracked and (root / folder).exists()]
    if stray:
        raise VersionError(f"{rev or 'this commit'} versions no {stray}, but the work tree has them: move them aside")
    if tracked:
        _dvc("pull", *tracked, cwd=root)
    wrong = mismatches(load(configfiles, root), root)
    if wrong:
        raise VersionError(
            "restored outputs that this config did not make (remove them to rerun, or restore with the "
            "config that made them):\n  " + "\n  ".join(wrong)
        )
    if tracked:
        _snakemake("--touch", "--forceall", "--quiet", configfiles=configfiles, cwd=root)
    return pending_jobs(root, configfiles)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m esforget.versioning", description=__doc__.split("\n\n")[0])
    profile = argparse.ArgumentParser(add_help=False)
    profile.add_argument("--configfile", nargs="+", default=list(DEFAULT_CONFIGFILES), help="as given to snakemake")
    commands = parser.add_subparsers(dest="command", required=True)
    save_command = commands.add_parser("save", parents=[profile], help="version the outputs with this commit")
    save_command.add_argument("-m", "--message", required=True)
    restore_command = commands.add_parser("restore", parents=[profile], help="bring back a version's outputs")
    restore_command.add_argument("rev", nargs="?", help="a commit, branch or tag (default: the checked-out one)")
    args = parser.parse_args(argv)
    configfiles = tuple(args.configfile)
    try:
        if args.command == "save":
            print(f"saved as {save(args.message, configfiles)}")
        else:
            pending = restore(args.rev, configfiles)
            print(f"restored; snakemake plans {len(pending)} job(s){': ' + ', '.join(pending) if pending else ''}")
    except VersionError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
