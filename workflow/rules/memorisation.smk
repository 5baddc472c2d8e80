# Memorisation stage: training time as a third axis (docs/science.md, "Training time: memorisation").  One
# name throughout: this file, config `memorisation:`, the commands `memorisation-*` (cli/memorisation.py),
# the package module memorisation.py and the folder results/memorisation/.  One series per (dataset,
# width, n, seed): a UNet trained from scratch on the first n images, measured at every checkpoint of a
# log-spaced grid on its raw and EMA weights.  Off unless `memorisation.datasets` names a subset.
#
# Resuming: checkpoints and per-checkpoint measurements live in the series folder, which is not an output
# of the rule (Snakemake deletes only declared outputs of a failed job): a re-run continues training from
# the newest checkpoint and measures only what is missing.

rule memorisation_series:
    input:
        subset="results/data/{dataset}/subset.pt",
        classifier="results/classifier/{dataset}/classifier.pt",
    output:
        table="results/memorisation/{dataset}/w{width}/n{n}/s{seed}/series.csv",
        sidecar=provenance("results/memorisation/{dataset}/w{width}/n{n}/s{seed}/series.csv"),
    wildcard_constraints:
        width=r"[0-9]+",
        seed=r"[0-9]+",
    params:
        spec=params_of("memorisation_series"),
        seed=config["seed"],
        device=config["device"],
        run_dir=lambda wc: f"results/memorisation/{wc.dataset}/w{wc.width}/n{wc.n}/s{wc.seed}",
    log:
        "results/logs/memorisation/{dataset}_w{width}_n{n}_s{seed}.log",
    threads: rule_threads("memorisation_series")
    resources:
        **rule_resources("memorisation_series"),
    shell:
        "$DIFFUSION_REGIMES memorisation-series --spec {params.spec:q} --seed {params.seed}"
        " --device {params.device} --threads {threads} --dataset {wildcards.dataset} --subset {input.subset}"
        " --classifier {input.classifier} --n {wildcards.n} --width {wildcards.width}"
        " --series-seed {wildcards.seed} --run-dir {params.run_dir} --out {output.table} 2> {log}"


rule memorisation_table:
    input:
        series=memorisation_all_series,
    output:
        table=report(
            "results/tables/memorisation.csv",
            caption="../report/memorisation.rst",
            category=REPORT_LEARNED,
            labels={"kind": "table", "content": "memorisation along training"},
        ),
        times="results/tables/memorisation_times.csv",
        sidecars=[provenance("results/tables/memorisation.csv"), provenance("results/tables/memorisation_times.csv")],
    params:
        spec=params_of("memorisation_table"),
        seed=config["seed"],
    log:
        "results/logs/memorisation/table.log",
    threads: rule_threads("memorisation_table")
    resources:
        **rule_resources("memorisation_table"),
    shell:
        "$DIFFUSION_REGIMES memorisation-table --spec {params.spec:q} --seed {params.seed}"
        " --series {input.series} --out {output.table} --times {output.times} 2> {log}"


rule memorisation_figures:
    input:
        table="results/tables/memorisation.csv",
        times="results/tables/memorisation_times.csv",
    output:
        pdf=report("results/figures/memorisation_{dataset}.pdf", caption="../report/pdf.rst", category=REPORT_PDF),
        png=report(
            "results/figures/memorisation_{dataset}.png",
            caption="../report/memorisation.rst",
            category=REPORT_LEARNED,
            labels=lambda wc: {"kind": "figure", "content": f"memorisation along training, {wc.dataset}"},
        ),
        sidecars=[
            provenance("results/figures/memorisation_{dataset}.pdf"),
            provenance("results/figures/memorisation_{dataset}.png"),
        ],
    params:
        spec=params_of("memorisation_figures"),
        seed=config["seed"],
    log:
        "results/logs/memorisation/figures_{dataset}.log",
    threads: rule_threads("memorisation_figures")
    resources:
        **rule_resources("memorisation_figures"),
    shell:
        "$DIFFUSION_REGIMES memorisation-figures --spec {params.spec:q} --seed {params.seed}"
        " --dataset {wildcards.dataset} --table {input.table} --times {input.times} --out {output.pdf} 2> {log}"


MEMORISATION_TARGETS = (
    ["results/tables/memorisation.csv", "results/tables/memorisation_times.csv"]
    + [f"results/figures/memorisation_{dataset}.pdf" for dataset in MEMORISATION.datasets]
    if MEMORISATION.datasets
    else []
)


rule memorisation:
    input:
        MEMORISATION_TARGETS,


TARGETS.extend(MEMORISATION_TARGETS)
