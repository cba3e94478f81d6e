import sys
from pathlib import Path

# Import the repository's package, also where the environment does not install it (--sdm conda).
sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1] / "src"))

from esforget.base.prepare import prepare
from esforget.core.logs import to_file
from esforget.data.prepare import check_prepared

to_file(snakemake.log[0])
splits = snakemake.params.splits  # task → split → path; none unless pretrained here
for name, paths in splits.items():
    for path in paths.values():
        check_prepared(path, snakemake.params.tasks[name], snakemake.params.seed)
task_data = {
    name: {
        "scorer": task["scorer"],
        "role": task["role"],
        "max_new_tokens": task["max_new_tokens"],
        "stop_strings": task.get("stop_strings", []),
        **splits[name],
    }
    for name, task in snakemake.params.tasks.items()
}
prepare(
    snakemake.params.spec,
    task_data,
    snakemake.params.seed,
    snakemake.output.model,
    snakemake.output.history,
    snakemake.threads,
)
