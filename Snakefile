# Does fine-tuning an LLM with Evolution Strategies make it forget what it knew, where GRPO
# does not — and why?  Data → base model → ES / GRPO runs → retention evaluation →
# weight-difference analysis → report.  Run: `snakemake --cores all` (see README.md).

from snakemake.utils import min_version, validate

from esforget.config.spellings import update_spellings

min_version("9.0")


# The default profile, unless the command line names another (`--configfile config/paper.yaml`):
# Snakemake would deep-merge the two, mixing the default's tiny model and tasks into it.
if not workflow.config_settings.configfiles:

    configfile: "config/config.yaml"


update_spellings(config)  # values in an old spelling are read in the current one, with a warning
validate(config, "workflow/schemas/config.schema.yaml")


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
