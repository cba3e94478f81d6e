import sys
from pathlib import Path

# Import the repository's package, also where the environment does not install it (--sdm conda).
sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1] / "src"))

from esforget import record
from esforget.io import write_parquet
from esforget.logs import to_file
from esforget.report import collect, render

REPO = Path(snakemake.scriptdir).parents[1]
to_file(snakemake.log[0])
params = snakemake.params
data = collect(
    snakemake.input.retention,
    snakemake.input.weights,
    snakemake.input.metrics,
    params.runs,
    params.methods,
    params.thresholds,
)
made_by = {
    "git": record.git_state(REPO),
    "config": dict(snakemake.config),
    "versions": record.package_versions(),
    "data": record.data_hashes(snakemake.input.manifests),
    "devices": record.devices(snakemake.input.run_configs),
    "device": record.this_device(),
    # the jobs before this one; Snakemake writes a job's benchmark file when it ends
    "times": record.stage_times(Path("logs/benchmarks")),
}
tables = render(
    data,
    params.prior_tasks,
    params.thresholds,
    params.methods,
    made_by,
    snakemake.output.html,
    {key: (svg, png) for key, svg, png in zip(params.figures, snakemake.output.svg, snakemake.output.png, strict=True)},
    title="ES vs GRPO: learning the new task, forgetting the old",
)
for name, path in zip(params.tables, snakemake.output.tables, strict=True):
    write_parquet(tables[name], path)
write_parquet(data.retention, snakemake.output.retention)
write_parquet(data.norms, snakemake.output.weights)
