import sys
from pathlib import Path

# Import the repository's package, also where the environment does not install it (--sdm conda).
sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1] / "src"))

from esforget.io import write_parquet
from esforget.logs import to_file
from esforget.report import collect, precision_table, render

to_file(snakemake.log[0])
params = snakemake.params
retention, per_tensor, norms, peaks, drift = collect(
    snakemake.input.retention,
    snakemake.input.weights,
    snakemake.input.metrics,
    params.runs,
    params.methods,
    params.thresholds,
)
precision = precision_table(norms, per_tensor, drift, params.methods, params.thresholds)
table = render(
    retention,
    norms,
    per_tensor,
    peaks,
    precision,
    drift,
    params.prior_tasks,
    params.tau,
    snakemake.output.html,
    {key: snakemake.output[key] for key in ("tradeoff", "norm", "divergence", "drift", "sparsity")},
    title="ES vs GRPO: learning the new task, forgetting the old",
)
write_parquet(table, snakemake.output.accuracy)
write_parquet(retention, snakemake.output.retention)
write_parquet(norms, snakemake.output.weights)
write_parquet(precision, snakemake.output.precision)
