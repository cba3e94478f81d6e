# Does fine-tuning an LLM with Evolution Strategies make it forget what it knew, where GRPO
# does not — and why?  Data → base model → ES / GRPO runs → retention evaluation →
# weight-difference analysis → report.  Run: `snakemake --cores all` (see README.md).

from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config/config.yaml"


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
