# Speciation stage: cloning sweeps of a model on real data, the regimes table and its figures
# (docs/science.md section 5).  The model is a wildcard: `exact` (the exact empirical score) is run here; the
# learned stage (learned.smk, included after this file) registers `unet` in the three tables below.
from diffusion_regimes.config import build as build_section
from diffusion_regimes.regimes import IdealSpec

IDEAL = build_section(IdealSpec, config["ideal"], where="ideal")


def subset_n(dataset):
    """Images in the prepared subset of `dataset` (config `datasets.<name>.n`)."""
    if dataset not in config.get("datasets", {}):
        raise ValueError(f"ideal.datasets: {dataset!r} is not a key of `datasets:` {list(config['datasets'])}")
    return int(config["datasets"][dataset]["n"])


# model -> its extra rule inputs; model -> the training-set sizes it is measured at on a dataset
# (none where `ideal.models` leaves the model out for that dataset)
MODEL_INPUTS = {"exact": lambda wc: {}}
MODEL_N_VALUES = {
    "exact": lambda dataset: IDEAL.n_values_for(dataset, subset_n=subset_n(dataset))
    if "exact" in IDEAL.models_for(dataset) else ()
}
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
        spectra="results/tables/spectra.csv",
        entropy="results/regimes/{dataset}/n{n}/entropy.csv",
    output:
        branches="results/regimes/{dataset}/n{n}/{model}/branches.csv",
        trajectories="results/regimes/{dataset}/n{n}/{model}/trajectories.csv",
        summary="results/regimes/{dataset}/n{n}/{model}/summary.json",
        strip="results/regimes/{dataset}/n{n}/{model}/strip.pt",
        samples="results/regimes/{dataset}/n{n}/{model}/samples.pt",
    params:
        spec=lambda wc: spec("ideal"),
        checkpoint=_checkpoint_arg,
        # completed chunks of pairs: not an output, so a killed sweep resumes from them
        chunk_dir=lambda wc: f"results/regimes/{wc.dataset}/n{wc.n}/{wc.model}/chunks",
    log:
        "results/logs/regimes/{dataset}_n{n}_{model}_clone.log",
    # resources.regimes_clone.threads (default 1): on a small shared CPU one thread per job and jobs in
    # parallel is fastest; the UNet sweeps (resources.regimes_clone_unet.threads) run last, after training,
    # when the other jobs are done, so the default gives them both cores
    threads: lambda wc: rule_threads("regimes_clone_unet" if wc.model == "unet" else "regimes_clone")
    resources:
        **rule_resources("regimes_clone"),
    shell:
        "{CLI} regimes-clone --spec {params.spec:q} --seed {config[seed]} --device {config[device]}"
        " --threads {threads} --dataset {wildcards.dataset} --subset {input.subset}"
        " --classifier {input.classifier} --spectra {input.spectra} --entropy {input.entropy}"
        " --n {wildcards.n} --model {wildcards.model} {params.checkpoint} --chunk-dir {params.chunk_dir}"
        " --branches {output.branches} --trajectories {output.trajectories} --summary {output.summary}"
        " --strip {output.strip} --samples {output.samples} 2> {log}"


rule regimes_row:
    input:
        summary="results/regimes/{dataset}/n{n}/{model}/summary.json",
        entropy="results/regimes/{dataset}/n{n}/entropy.csv",
        spectra="results/tables/spectra.csv",
    output:
        row="results/regimes/{dataset}/n{n}/{model}/row.csv",
    params:
        spec=lambda wc: spec("ideal"),
    log:
        "results/logs/regimes/{dataset}_n{n}_{model}_row.log",
    threads: rule_threads("regimes_row")
    resources:
        **rule_resources("regimes_row"),
    shell:
        "{CLI} regimes-row --spec {params.spec:q} --summary {input.summary} --entropy {input.entropy} --spectra {input.spectra}"
        " --dataset {wildcards.dataset} --model {wildcards.model} --seed {config[seed]} --out {output.row}"
        " 2> {log}"


def regimes_rows(wildcards=None):
    return [
        f"results/regimes/{dataset}/n{n}/{model}/row.csv"
        for dataset in config["ideal"]["datasets"]
        for model in REGIMES_MODELS
        for n in MODEL_N_VALUES[model](dataset)
    ]


rule regimes_table:
    input:
        rows=regimes_rows,
    output:
        report("results/tables/regimes.csv", caption="../report/regimes_table.rst", category=REPORT_REGIMES,
               labels={"kind": "table", "content": "t_S and t_C predicted vs measured"}),
        provenance("results/tables/regimes.csv"),
    log:
        "results/logs/regimes/table.log",
    threads: rule_threads("regimes_table")
    resources:
        **rule_resources("regimes_table"),
    shell:
        "{CLI} regimes-table --rows {input.rows} --seed {config[seed]} --out {output[0]} 2> {log}"


REGIMES_FIGURES = ("phi", "collapse", "strip", "neighbours")


rule regimes_figures:
    input:
        table="results/tables/regimes.csv",
        subset="results/data/{dataset}/subset.pt",
    output:
        phi=report("results/figures/regimes_phi_{dataset}.pdf", caption="../report/pdf.rst", category=REPORT_PDF),
        collapse=report("results/figures/regimes_collapse_{dataset}.pdf", caption="../report/pdf.rst",
                        category=REPORT_PDF),
        strip=report("results/figures/regimes_strip_{dataset}.pdf", caption="../report/pdf.rst",
                     category=REPORT_PDF),
        neighbours=report("results/figures/regimes_neighbours_{dataset}.pdf", caption="../report/pdf.rst",
                          category=REPORT_PDF),
        pngs=[report(f"results/figures/regimes_{stem}_{{dataset}}.png", caption=f"../report/regimes_{stem}.rst",
                     category=REPORT_REGIMES, labels=report_labels("figure", f"regimes_{stem}"))
              for stem in REGIMES_FIGURES],
        extra=[provenance(f"results/figures/regimes_{stem}_{{dataset}}.{ext}")
               for stem in REGIMES_FIGURES for ext in ("png", "pdf")],
    log:
        "results/logs/regimes/{dataset}_figures.log",
    threads: rule_threads("regimes_figures")
    resources:
        **rule_resources("regimes_figures"),
    shell:
        "{CLI} regimes-figures --table {input.table} --dataset {wildcards.dataset}"
        " --regimes-dir results/regimes/{wildcards.dataset} --subset {input.subset} --phi {output.phi}"
        " --collapse {output.collapse} --strip {output.strip} --neighbours {output.neighbours}"
        " --seed {config[seed]} 2> {log}"


TARGETS.extend(["results/tables/regimes.csv"])
TARGETS.extend(
    f"results/figures/regimes_{stem}_{dataset}.pdf"
    for dataset in config["ideal"]["datasets"]
    for stem in REGIMES_FIGURES
)
