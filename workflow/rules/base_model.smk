rule prepare_base_model:
    input:
        base_model_inputs,
    output:
        model=directory(f"{BASE_DIR}/model"),
        history=f"{BASE_DIR}/pretrain_history.parquet",
    log:
        "logs/{model_id}/base/prepare_base_model.log",
    benchmark:
        "logs/benchmarks/{model_id}/base/prepare_base_model.tsv"
    conda:
        "../../envs/esforget.yaml"
    threads: config["threads"]["pretrain"]
    resources:
        mem_mb=model_resource("mem_mb"),
        runtime=model_resource("runtime"),
    params:
        code=code_of("prepare_base_model.py"),
        spec=model_spec,
        tasks=lambda wc: {t: TASKS[t] for t in pretrain_data(wc)},
        splits=pretrain_data,
        seed=config["data_seed"],
    script:
        "../scripts/prepare_base_model.py"
