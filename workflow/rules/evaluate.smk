# Retention: every checkpoint (step 0 = the base, scored once per model) on every
# evaluation task, new and prior: generative probe, log-likelihood probe (multiple-choice
# tasks), KL from the base (prior tasks). Both rules run workflow/scripts/evaluate.py with the
# same params and resources; the base's rule differs in its inputs and outputs only.


rule evaluate_retention:
    input:
        checkpoints=f"{RUN_DIR}/checkpoints",
        base=f"{BASE_DIR}/retention.parquet",
        base_model=f"{BASE_DIR}/model",  # for the divergence KL(base ‖ checkpoint)
        tasks=eval_inputs,
    output:
        f"{RUN_DIR}/retention.parquet",
    log:
        f"logs/{RUN}/evaluate.log",
    benchmark:
        f"logs/benchmarks/{RUN}/evaluate.tsv"
    conda:
        "../../envs/esforget.yaml"
    threads: config["threads"]["evaluate"]
    resources:
        gpu=model_resource("gpus"),
        mem_mb=model_resource("mem_mb"),
        runtime=model_resource("runtime"),
    params:
        code=code_of("evaluate.py"),
        evaluation=config["evaluation"],
        tasks=TASKS,
        data_seed=config["data_seed"],
        names=names,
    script:
        "../scripts/evaluate.py"


use rule evaluate_retention as evaluate_base with:
    input:
        model=f"{BASE_DIR}/model",
        tasks=eval_inputs,
    output:
        f"{BASE_DIR}/retention.parquet",
    log:
        "logs/{model_id}/base/evaluate.log",
    benchmark:
        "logs/benchmarks/{model_id}/base/evaluate.tsv"
