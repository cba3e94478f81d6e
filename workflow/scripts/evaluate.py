# Scores the base (rule evaluate_base) or every checkpoint of one run (evaluate_retention).
import sys
from pathlib import Path

# Import the repository's package, also where the environment does not install it (--sdm conda).
sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1] / "src"))

from esforget.core.checkpoints import list_checkpoints
from esforget.core.files import read_parquet, write_parquet
from esforget.core.logs import to_file
from esforget.data.prepare import check_prepared
from esforget.evaluate.retention import EvalTask, evaluate, with_base
from esforget.tasks import read_split

to_file(snakemake.log[0])
evaluation, all_tasks = snakemake.params.evaluation, snakemake.params.tasks
for name, path in zip(evaluation["tasks"], snakemake.input.tasks, strict=True):
    check_prepared(path, all_tasks[name], snakemake.params.data_seed)
tasks = {
    name: EvalTask(
        read_split(path),
        all_tasks[name]["scorer"],
        all_tasks[name]["max_new_tokens"],
        tuple(all_tasks[name].get("stop_strings", [])),
        prior=all_tasks[name]["role"] == "prior",
        extra_scorers=tuple(all_tasks[name].get("extra_scorers", [])),
    )
    for name, path in zip(evaluation["tasks"], snakemake.input.tasks, strict=True)
}
run = snakemake.params.names
# the base's replies for the sampled KL: the same for every run of the model (seeded with data_seed)
sampled = {"sampled_kl_prompts": evaluation["sampled_kl_prompts"], "seed": snakemake.params.data_seed}
if snakemake.rule == "evaluate_base":
    labels = {"model": run["model"], "method": "base", "train_task": "", "seed": 0}
    checkpoints = [(0, snakemake.input.model)]
    table = evaluate(
        checkpoints, tasks, labels, evaluation["batch_size"], snakemake.input.model, snakemake.threads, **sampled
    )
else:
    labels = {"model": run["model"], "method": run["method"], "train_task": run["task"], "seed": run["seed"]}
    checkpoints = list_checkpoints(snakemake.input.checkpoints)
    table = evaluate(
        checkpoints, tasks, labels, evaluation["batch_size"], snakemake.input.base_model, snakemake.threads, **sampled
    )
    table = with_base(table, read_parquet(snakemake.input.base), labels)
write_parquet(table, snakemake.output[0])
