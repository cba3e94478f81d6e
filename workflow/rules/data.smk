rule prepare_data:
    output:
        splits=expand("data/{{task_id}}/{split}.parquet", split=SPLITS),
        manifest="data/{task_id}/manifest.json",
    log:
        "logs/data/{task_id}.log",
    conda:
        "../../envs/esforget.yaml"
    resources:
        mem_mb=SMALL_JOB["mem_mb"],
        runtime=SMALL_JOB["runtime"],
    params:
        code=code_of("prepare_data.py"),
        task=lambda wc: TASKS[TASK_OF[wc.task_id]],
        seed=config["data_seed"],
    script:
        "../scripts/prepare_data.py"
