# The page's figures and tables are the package's (esforget.report.page); each figure's caption is
# workflow/report/<key>.rst, shown by the page and by Snakemake's own report alike.
from esforget.report.page import FIGURES, TABLES

# Relative to the working directory, as every input is: a copied or moved workflow stays current.
CAPTIONS = "workflow/report"


rule render_report:
    input:
        retention=run_paths("retention.parquet"),
        weights=run_paths("weight_diff.parquet"),
        metrics=run_paths("metrics.parquet"),
        run_configs=run_paths("run_config.json"),
        manifests=[f"{layout.data_dir(config, task)}/manifest.json" for task in TASKS],
        captions=[f"{CAPTIONS}/{key}.rst" for key in FIGURES],
    output:
        html=report(
            "results/report/report.html",
            caption="../report/report.rst",
            category="Report",
        ),
        svg=[
            report(f"results/report/figures/{key}.svg", caption=f"../report/{key}.rst", category="Figures")
            for key in FIGURES
        ],
        png=[f"results/report/figures/{key}.png" for key in FIGURES],
        tables=[f"results/report/{name}.parquet" for name in TABLES],
        retention="results/report/retention.parquet",
        weights="results/report/weight_norms.parquet",
    log:
        "logs/report/render_report.log",
    conda:
        "../../envs/esforget.yaml"
    resources:
        mem_mb=SMALL_JOB["mem_mb"],
        runtime=SMALL_JOB["runtime"],
    params:
        code=code_of("render_report.py"),
        runs=all_runs(config),
        methods=METHODS,
        prior_tasks=[t for t in config["evaluation"]["tasks"] if TASKS[t]["role"] == "prior"],
        thresholds=config["analysis"]["sparsity_thresholds"],
        # the plain ES every variant is compared with, and the reference GRPO (if the config names them)
        plain={"es": config["analysis"].get("plain_es"), "grpo": config["analysis"].get("compare_to")},
        figures=FIGURES,
        tables=TABLES,
    script:
        "../scripts/render_report.py"
