"""The config as the Snakefile resolves it, for tools that run beside Snakemake.

As a command, it checks config files as `snakemake --configfile FILE...` would read them and
says what it refuses in one line: `python -m esforget.config.load my.yaml`. Snakemake reads a
`--configfile` itself before the workflow does, and its message for a YAML syntax error names
neither the file nor the line; this one names both."""

from __future__ import annotations

import sys
from pathlib import Path

from esforget.config.checks import check
from esforget.config.files import read
from esforget.config.spellings import update_spellings

DEFAULT_CONFIGFILES = ("config/config.yaml",)
SCHEMA = "workflow/schemas/config.schema.yaml"


def load(configfiles: list[str] | tuple[str, ...] = DEFAULT_CONFIGFILES, root: str | Path = ".") -> dict:
    """The config as the Snakefile resolves it, for tools that run beside Snakemake: the files
    deep-merged in order (later keys win, as `--configfile a b`), old spellings updated
    (`esforget.config.spellings`), validated against the schema
    with its defaults filled in, then the cross-field checks."""
    from snakemake.utils import update_config, validate

    config: dict = {}
    for file in configfiles:
        update_config(config, read(Path(root) / file))
    update_spellings(config)
    validate(config, str(Path(root) / SCHEMA))
    check(config)
    return config


def main(argv: list[str] | None = None) -> int:
    from snakemake.exceptions import WorkflowError  # the schema's refusals, as Snakemake words them

    files = sys.argv[1:] if argv is None else argv
    try:
        load(files or DEFAULT_CONFIGFILES)
    except (ValueError, OSError, WorkflowError) as refused:
        print(f"Config refused: {refused}", file=sys.stderr)
        return 1
    print(f"Config accepted: {', '.join(files or DEFAULT_CONFIGFILES)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
