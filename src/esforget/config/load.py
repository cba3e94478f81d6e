"""The config as the Snakefile resolves it, for tools that run beside Snakemake."""

from __future__ import annotations

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
