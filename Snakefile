# Does fine-tuning an LLM with Evolution Strategies make it forget what it knew, where GRPO
# does not — and why?  Data → base model → ES / GRPO runs → retention evaluation →
# weight-difference analysis → report.  Run: `snakemake --cores all` (see README.md).

from snakemake.utils import min_version, validate

from esforget.config.checks import check as check_config
from esforget.config.files import read as read_config_file
from esforget.config.spellings import update_spellings

min_version("9.0")


# The default profile, unless the command line names another (`--configfile config/paper.yaml`):
# Snakemake would deep-merge the two, mixing the default's tiny model and tasks into it.
if not workflow.config_settings.configfiles:

    configfile: "config/config.yaml"


# Every config error is one line naming the file, the key and the value, without a traceback
# (Snakemake would print the Snakefile's frame under it). Snakemake keeps the last value of a
# key given twice, so every config file is read again, strictly; after the schema, the typed
# settings and the cross-field checks, all before torch is imported.
try:
    for configfile_read in workflow.config_settings.configfiles or ["config/config.yaml"]:
        read_config_file(configfile_read)
    update_spellings(config)  # values in an old spelling are read in the current one, with a warning
    validate(config, "workflow/schemas/config.schema.yaml")
    check_config(config)
except (ValueError, OSError) as refused:
    raise SystemExit(f"Config refused: {refused}") from None


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/base_model.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/analyze.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        "results/report/report.html",
