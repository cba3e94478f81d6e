rule prepare_data:
    output:
        splits=expand("data/{{task}}/{split}.parquet", split=SPLITS),
        manifest="data/{task}/manifest.json",
    log:
        "logs/data/{task}.log",
    conda:
        "../../envs/esforget.yaml"
    params:
        code=code_of("prepare_data.py"),
        task=lambda wc: TASKS[wc.task],
        seed=config["data_seed"],
    script:
        "../scripts/prepare_data.py"
