import polars as pl

from esforget.checkpoints import list_checkpoints
from esforget.io import write_parquet
from esforget.logs import to_file
from esforget.weight_diff import diff_checkpoint

to_file(snakemake.log[0])
wc = snakemake.wildcards
tables = [
    diff_checkpoint(snakemake.input.base, path, snakemake.params.thresholds).with_columns(pl.lit(step).alias("step"))
    for step, path in list_checkpoints(snakemake.input.checkpoints)
]
labels = {"model": wc.model, "method": wc.method, "train_task": wc.task, "seed": int(wc.seed)}
table = pl.concat(tables).with_columns(*(pl.lit(v).alias(k) for k, v in labels.items()))
write_parquet(table, snakemake.output[0])
