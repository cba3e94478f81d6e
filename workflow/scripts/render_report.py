import sys
from pathlib import Path

# Import the repository's package, also where the environment does not install it (--sdm conda).
sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1] / "src"))

from esforget.core.files import write_parquet
from esforget.core.logs import to_file
from esforget.report import made_by
from esforget.report.page import collect, render

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
    "git": made_by.git_state(REPO),
    "config": dict(snakemake.config),
    "versions": made_by.package_versions(),
    "data": made_by.data_hashes(snakemake.input.manifests),
    "devices": made_by.devices(snakemake.input.run_configs),
    "device": made_by.this_device(),
    # the jobs before this one; Snakemake writes a job's benchmark file when it ends
    "times": made_by.stage_times(Path("logs/benchmarks")),
}
tables = render(
    data,
    params.prior_tasks,
    params.thresholds,
    params.methods,
    made_by,
    snakemake.output.html,
    {key: (svg, png) for key, svg, png in zip(params.figures, snakemake.output.svg, snakemake.output.png, strict=True)},
    {key: Path(rst).read_text() for key, rst in zip(params.figures, snakemake.input.captions, strict=True)},
    title="ES vs GRPO: learning the new task, forgetting the old",
    plain=params.plain,
)
for name, path in zip(params.tables, snakemake.output.tables, strict=True):
    write_parquet(tables[name], path)
write_parquet(data.retention, snakemake.output.retention)
write_parquet(data.norms, snakemake.output.weights)
