from pathlib import Path

from esforget.logs import to_file
from esforget.prepare_data import prepare_task

to_file(snakemake.log[0])
prepare_task(snakemake.params.task, snakemake.params.seed, Path(snakemake.output.manifest).parent)
