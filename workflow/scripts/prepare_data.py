import sys
from pathlib import Path

# Import the repository's package, also where the environment does not install it (--sdm conda).
sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1] / "src"))

from esforget.core.logs import to_file
from esforget.data.prepare import prepare_task

to_file(snakemake.log[0])
prepare_task(snakemake.params.task, snakemake.params.seed, Path(snakemake.output.manifest).parent)
