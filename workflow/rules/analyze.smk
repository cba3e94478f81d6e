rule analyze_weights:
    input:
        base=f"{BASE_DIR}/model",
        checkpoints=f"{RUN_DIR}/checkpoints",
        compare_to=compared_checkpoints,
    output:
        f"{RUN_DIR}/weight_diff.parquet",
    log:
        f"logs/{RUN}/analyze_weights.log",
    benchmark:
        f"logs/benchmarks/{RUN}/analyze_weights.tsv"
    conda:
        "../../envs/esforget.yaml"
    resources:
        mem_mb=model_resource("mem_mb"),
        runtime=model_resource("runtime"),
    params:
        code=code_of("analyze_weights.py"),
        analysis=config["analysis"],
        reference_dtype=lambda wc: training_dtype(run_method(wc)),
        compare_dtype=compared_dtype,
        names=names,
    script:
        "../scripts/analyze_weights.py"
