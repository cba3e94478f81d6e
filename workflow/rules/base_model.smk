rule prepare_base_model:
    input:
        base_model_inputs,
    output:
        model=directory("results/{model}/base/model"),
        history="results/{model}/base/pretrain_history.parquet",
    log:
        "logs/{model}/base/prepare_base_model.log",
    benchmark:
        "logs/benchmarks/{model}/base/prepare_base_model.tsv"
    conda:
        "../../envs/esforget.yaml"
    threads: config["threads"]["pretrain"]
    params:
        code=code_of("prepare_base_model.py"),
        spec=lambda wc: config["models"][wc.model],
        tasks=lambda wc: {t: TASKS[t] for t in pretrain_tasks()},
        seed=config["data_seed"],
    script:
        "../scripts/prepare_base_model.py"
