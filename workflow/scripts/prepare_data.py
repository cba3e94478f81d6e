import sys
from pathlib import Path

sys.path.insert(
    0, str(Path(snakemake.scriptdir).parents[1] / "src")
)  # the repository's package, also under --sdm conda

from esforget.logs import to_file
from esforget.prepare_data import prepare_task

to_file(snakemake.log[0])
prepare_task(snakemake.params.task, snakemake.params.seed, Path(snakemake.output.manifest).parent)
