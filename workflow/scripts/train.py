from pathlib import Path

from esforget import methods
from esforget.io import read_parquet
from esforget.logs import to_file

to_file(snakemake.log[0])
task = snakemake.params.task
methods.train(
    snakemake.wildcards.method,
    snakemake.params.method,
    base_dir=snakemake.input.base,
    train_rows=read_parquet(snakemake.input.train),
    validation_rows=read_parquet(snakemake.input.validation),
    scorer=task["scorer"],
    max_new_tokens=task["max_new_tokens"],
    seed=int(snakemake.wildcards.seed),
    out_dir=Path(snakemake.output.metrics).parent,
    threads=snakemake.threads,
)
