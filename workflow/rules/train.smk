# One job per (model, method, task, seed). A method is a named hyper-parameter set of one
# algorithm (config `methods`); the algorithm picks the trainer (esforget.train.methods) and the
# job's threads (config `threads.train_es` or `threads.train_grpo`).


rule train:
    input:
        base=f"{BASE_DIR}/model",
        train=run_split("train"),
        validation=run_split("validation"),
        replay=replay_splits,
    output:
        checkpoints=directory(f"{RUN_DIR}/checkpoints"),
        metrics=f"{RUN_DIR}/metrics.parquet",
        run_config=f"{RUN_DIR}/run_config.json",
    log:
        f"logs/{RUN}/train.log",
    benchmark:
        f"logs/benchmarks/{RUN}/train.tsv"
    conda:
        "../../envs/esforget.yaml"
    threads: train_threads
    resources:
        gpu=model_resource("gpus"),
        mem_mb=model_resource("mem_mb"),
        runtime=model_resource("runtime"),
    params:
        code=code_of("train.py"),
        method=run_method,
        task=lambda wc: TASKS[TASK_OF[wc.task_id]],
        replay_tasks=lambda wc: {name: TASKS[name] for name in run_method(wc).get("replay_tasks", [])},
        data_seed=config["data_seed"],
    script:
        "../scripts/train.py"
