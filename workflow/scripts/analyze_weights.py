# Every checkpoint of one run against its base (rule analyze_weights), in one pass over the base.
import sys
from pathlib import Path

# Import the repository's package, also where the environment does not install it (--sdm conda).
sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1] / "src"))

import polars as pl

from esforget.analyze.weight_diff import diff_run
from esforget.core.checkpoints import list_checkpoints
from esforget.core.files import write_parquet
from esforget.core.logs import to_file

to_file(snakemake.log[0])
analysis = snakemake.params.analysis
table = diff_run(
    snakemake.input.base,
    list_checkpoints(snakemake.input.checkpoints),
    analysis["sparsity_thresholds"],
    rank=analysis.get("rank", False),
    reference_dtype=snakemake.params.reference_dtype,  # ΔW against the base as training saw it
    # the final update of the run it is compared with (config analysis.compare_to), if any
    compare_to=(
        (list_checkpoints(snakemake.input.compare_to)[-1][1], snakemake.params.compare_dtype)
        if snakemake.input.compare_to
        else None
    ),
)
run = snakemake.params.names
labels = {"model": run["model"], "method": run["method"], "train_task": run["task"], "seed": run["seed"]}
write_parquet(table.with_columns(*(pl.lit(v).alias(k) for k, v in labels.items())), snakemake.output[0])
