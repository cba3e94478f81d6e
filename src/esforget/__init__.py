"""esforget: does ES fine-tuning of an LLM forget what it knew, where GRPO does not — and why?

All logic of the Snakemake workflow lives here so that every stage can be called and
tested without Snakemake; `workflow/scripts/*.py` only wire rule inputs to these functions.
"""
