import sys
from pathlib import Path

# Import the repository's package, also where the environment does not install it (--sdm conda).
sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1] / "src"))

import torch

from esforget.core.logs import to_file
from esforget.data.prepare import check_prepared
from esforget.train.launch import run

to_file(snakemake.log[0])
task = snakemake.params.task
for split in (snakemake.input.train, snakemake.input.validation):
    check_prepared(split, task, snakemake.params.data_seed)
replay = []  # the prior tasks an ES method replays, in its order (the rule's `replay` input)
for (name, prior), split in zip(snakemake.params.replay_tasks.items(), snakemake.input.replay, strict=True):
    check_prepared(split, prior, snakemake.params.data_seed)
    replay.append(
        {
            "name": name,
            "train": split,
            "scorer": prior["scorer"],
            "max_new_tokens": prior["max_new_tokens"],
            "stop_strings": prior.get("stop_strings", []),
        }
    )
job = {
    "method_name": snakemake.wildcards.method,
    "method": snakemake.params.method,
    "base_dir": snakemake.input.base,
    "train": snakemake.input.train,
    "validation": snakemake.input.validation,
    "scorer": task["scorer"],
    "max_new_tokens": task["max_new_tokens"],
    "stop_strings": task.get("stop_strings", []),
    "seed": int(snakemake.wildcards.seed),
    "out_dir": str(Path(snakemake.output.metrics).parent),
    "threads": snakemake.threads,
    "replay": replay,
    # read from the config, not a rule parameter: where metrics are shown changes no output,
    # so switching it on must not rerun training
    "report_to": snakemake.config.get("logging", {}).get("report_to", []),
}
# One process per GPU where there are GPUs. On CPU, ES runs one single-thread process per
# thread the rule was given; GRPO runs one process using all of them.
on_cpu = snakemake.threads if job["method"]["algorithm"] == "es" else 1
run(job, processes=torch.cuda.device_count() or on_cpu)
