"""The workflow config: loaded and merged as Snakemake does, cross-checked, resolved per run,
and documented (config/README.md is generated from it)."""
