# Speciation stage: cloning sweeps of a model on real data, the regimes table and its figures
# (SCIENCE.md section 5).  The model is a wildcard: `exact` (the exact empirical score) is run here; the
# UNet stage adds `MODEL_INPUTS["unet"]` (its checkpoint) and appends its models to REGIMES_MODELS.

MODEL_INPUTS = {"exact": lambda wc: {}}
REGIMES_MODELS = ["exact"]


def _model_inputs(wc):
    return MODEL_INPUTS[wc.model](wc)


def _checkpoint_arg(wildcards, input):
    return f"--checkpoint {input.checkpoint}" if "checkpoint" in input.keys() else ""


rule regimes_clone:
    input:
        unpack(_model_inputs),
        subset="results/data/{dataset}/subset.pt",
        classifier="results/classifier/{dataset}/classifier.pt",
    output:
        branches="results/regimes/{dataset}/n{n}/{model}/branches.csv",
        trajectories="results/regimes/{dataset}/n{n}/{model}/trajectories.csv",
        summary="results/regimes/{dataset}/n{n}/{model}/summary.json",
        strip="results/regimes/{dataset}/n{n}/{model}/strip.pt",
    params:
        spec=lambda wc: spec("ideal"),
        checkpoint=_checkpoint_arg,
    log:
        "results/logs/regimes/{dataset}_n{n}_{model}_clone.log",
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
        gpu=1,
    shell:
        "{CLI} regimes-clone --spec {params.spec:q} --seed {config[seed]} --device {config[device]}"
        " --threads {threads} --subset {input.subset} --classifier {input.classifier} --n {wildcards.n}"
        " --model {wildcards.model} {params.checkpoint} --out-dir results/regimes/{wildcards.dataset}/n{wildcards.n}/{wildcards.model}"
        " 2> {log}"


rule regimes_row:
    input:
        summary="results/regimes/{dataset}/n{n}/{model}/summary.json",
        entropy="results/regimes/{dataset}/n{n}/entropy.csv",
        spectra="results/tables/spectra.csv",
    output:
        row="results/regimes/{dataset}/n{n}/{model}/row.csv",
    log:
        "results/logs/regimes/{dataset}_n{n}_{model}_row.log",
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    shell:
        "{CLI} regimes-row --summary {input.summary} --entropy {input.entropy} --spectra {input.spectra}"
        " --dataset {wildcards.dataset} --model {wildcards.model} --seed {config[seed]} --out {output.row}"
        " 2> {log}"


def regimes_rows(wildcards=None):
    return [
        f"results/regimes/{dataset}/n{n}/{model}/row.csv"
        for dataset in config["ideal"]["datasets"]
        for n in config["ideal"]["n_values"]
        for model in REGIMES_MODELS
    ]


rule regimes_table:
    input:
        rows=regimes_rows,
    output:
        with_provenance("results/tables/regimes.csv"),
    log:
        "results/logs/regimes/table.log",
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    shell:
        "{CLI} regimes-table --rows {input.rows} --seed {config[seed]} --out {output[0]} 2> {log}"


rule regimes_figures:
    input:
        table="results/tables/regimes.csv",
        subset="results/data/{dataset}/subset.pt",
    output:
        phi=report("results/figures/regimes_phi_{dataset}.pdf", caption="../report/regimes_phi.rst",
                   category="Real data"),
        collapse=report("results/figures/regimes_collapse_{dataset}.pdf",
                        caption="../report/regimes_collapse.rst", category="Real data"),
        strip=report("results/figures/regimes_strip_{dataset}.pdf", caption="../report/regimes_strip.rst",
                     category="Real data"),
        extra=[p for stem in ("phi", "collapse", "strip") for p in with_provenance(
            f"results/figures/regimes_{stem}_{{dataset}}.png")] + [provenance(
            f"results/figures/regimes_{stem}_{{dataset}}.pdf") for stem in ("phi", "collapse", "strip")],
    log:
        "results/logs/regimes/{dataset}_figures.log",
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    shell:
        "{CLI} regimes-figures --table {input.table} --dataset {wildcards.dataset}"
        " --regimes-dir results/regimes/{wildcards.dataset} --subset {input.subset} --phi {output.phi}"
        " --collapse {output.collapse} --strip {output.strip} --seed {config[seed]} 2> {log}"


TARGETS.extend(["results/tables/regimes.csv"])
TARGETS.extend(
    f"results/figures/regimes_{stem}_{dataset}.pdf"
    for dataset in config["ideal"]["datasets"]
    for stem in ("phi", "collapse", "strip")
)
