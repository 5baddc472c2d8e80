# Ideal-models stage: which ideal model does a trained UNet follow (docs/science.md section 10)?  One name
# throughout: this file, config `ideal_models:`, the commands `ideal-models-*` (cli/ideal_models.py), the
# package modules ideal_models.py (the experiment) and local_score.py (the LS / ELS machines), the folder
# results/ideal_models/ and results/tables/ideal_models.csv.  Off unless `ideal_models.datasets` names a subset
# (config/ideal_models.yaml).  The stage trains its own networks (the presets of `ideal_models.networks`, the
# `train` recipe, `ideal_models.train_steps` steps when set) so that the default architecture and the local one
# are compared at the same training length.  Its helpers (IDEAL, ideal_datasets, ...) are in common.smk.

rule ideal_models_train:
    input:
        subset="results/data/{dataset}/subset.pt",
    output:
        checkpoint="results/ideal_models/{dataset}/unet_{network}/final.pt",
        loss="results/ideal_models/{dataset}/unet_{network}/loss.csv",
        figure="results/ideal_models/{dataset}/unet_{network}/training.pdf",
        png="results/ideal_models/{dataset}/unet_{network}/training.png",
        sidecars=[
            provenance(f"results/ideal_models/{{dataset}}/unet_{{network}}/{name}")
            for name in ("final.pt", "loss.csv", "training.pdf", "training.png")
        ],
    params:
        spec=ideal_train_spec,
        unet=lambda wc: json.dumps({"preset": wc.network}),
        seed=config["seed"],
        device=config["device"],
        run_dir=lambda wc: f"results/ideal_models/{wc.dataset}/unet_{wc.network}/runs",
    log:
        "results/logs/ideal_models/{dataset}_train_{network}.log",
    threads: rule_threads("ideal_models_train")
    resources:
        **rule_resources("ideal_models_train"),
    shell:
        "$DIFFUSION_REGIMES train-ddpm --spec {params.spec:q} --unet-spec {params.unet:q} --seed {params.seed}"
        " --device {params.device} --threads {threads} --dataset {wildcards.dataset}"
        " --subset {input.subset} --run-dir {params.run_dir} --checkpoint {output.checkpoint}"
        " --loss-table {output.loss} --figure {output.figure} 2> {log}"


rule ideal_models_compare:
    input:
        subset="results/data/{dataset}/subset.pt",
        checkpoints=expand("results/ideal_models/{{dataset}}/unet_{network}/final.pt", network=IDEAL["networks"]),
    output:
        tables=[f"results/ideal_models/{{dataset}}/{name}" for name in IDEAL_FILES],
        grid="results/ideal_models/{dataset}/grid.pt",
        sidecars=[provenance(f"results/ideal_models/{{dataset}}/{name}") for name in (*IDEAL_FILES, "grid.pt")],
    params:
        spec=params_of("ideal_models_compare"),
        seed=config["seed"],
        device=config["device"],
        checkpoints=lambda wc, input: " ".join(
            f"--checkpoint {net}={path}" for net, path in zip(IDEAL["networks"], input.checkpoints)
        ),
    log:
        "results/logs/ideal_models/{dataset}_compare.log",
    threads: rule_threads("ideal_models_compare")
    resources:
        **rule_resources("ideal_models_compare"),
    shell:
        "$DIFFUSION_REGIMES ideal-models-compare --spec {params.spec:q} --seed {params.seed}"
        " --device {params.device} --threads {threads} --subset {input.subset} {params.checkpoints}"
        " --summary {output.tables[0]} --per-sample {output.tables[1]} --trajectory {output.tables[2]}"
        " --calibration {output.tables[3]} --bank-study {output.tables[4]} --grid {output.grid} 2> {log}"


rule ideal_models_figure:
    input:
        per_sample="results/ideal_models/{dataset}/per_sample.csv",
        trajectory="results/ideal_models/{dataset}/trajectory.csv",
        calibration="results/ideal_models/{dataset}/calibration.csv",
        grid="results/ideal_models/{dataset}/grid.pt",
    output:
        figure=report(
            "results/figures/ideal_models_{dataset}.pdf", caption="../report/pdf.rst", category=REPORT_PDF
        ),
        png="results/figures/ideal_models_{dataset}.png",
        sidecars=with_provenance_only("results/figures/ideal_models_{dataset}"),
    params:
        spec=params_of("ideal_models_figure"),
        seed=config["seed"],
    log:
        "results/logs/ideal_models/{dataset}_figure.log",
    threads: rule_threads("ideal_models_figure")
    resources:
        **rule_resources("ideal_models_figure"),
    shell:
        "$DIFFUSION_REGIMES ideal-models-figure --spec {params.spec:q} --seed {params.seed}"
        " --dataset {wildcards.dataset} --per-sample {input.per_sample} --trajectory {input.trajectory}"
        " --calibration {input.calibration} --grid {input.grid} --figure {output.figure} 2> {log}"


rule ideal_models_regimes:
    input:
        subset="results/data/{dataset}/subset.pt",
        calibration="results/ideal_models/{dataset}/calibration.csv",
        classifier="results/classifier/{dataset}/classifier.pt",
        spectrum="results/spectra/{dataset}.json",
        entropy=lambda wc: f"results/regimes/{wc.dataset}/n{subset_n(wc.dataset)}/entropy.csv",
    output:
        summary="results/ideal_models/{dataset}/regimes_{machine}/summary.json",
        branches="results/ideal_models/{dataset}/regimes_{machine}/branches.csv",
        sidecars=[
            provenance(f"results/ideal_models/{{dataset}}/regimes_{{machine}}/{name}")
            for name in ("summary.json", "branches.csv")
        ],
    params:
        spec=params_of("ideal_models_compare"),
        regimes=params_of("regimes_clone"),
        seed=config["seed"],
        device=config["device"],
        chunk_dir=lambda wc: f"results/ideal_models/{wc.dataset}/regimes_{wc.machine}/chunks",
    log:
        "results/logs/ideal_models/{dataset}_regimes_{machine}.log",
    threads: rule_threads("ideal_models_regimes")
    resources:
        **rule_resources("ideal_models_regimes"),
    shell:
        "$DIFFUSION_REGIMES ideal-models-regimes --spec {params.spec:q} --regimes-spec {params.regimes:q}"
        " --seed {params.seed} --device {params.device} --threads {threads} --model {wildcards.machine}"
        " --subset {input.subset} --calibration {input.calibration} --classifier {input.classifier}"
        " --spectrum {input.spectrum} --entropy {input.entropy} --summary {output.summary}"
        " --branches {output.branches} --chunk-dir {params.chunk_dir} 2> {log}"


rule ideal_models_table:
    input:
        summaries=expand("results/ideal_models/{dataset}/summary.csv", dataset=ideal_datasets()),
        sweeps=ideal_sweeps,
    output:
        table="results/tables/ideal_models.csv",
        sidecar=provenance("results/tables/ideal_models.csv"),
    params:
        seed=config["seed"],
    log:
        "results/logs/ideal_models/table.log",
    threads: rule_threads("ideal_models_table")
    resources:
        **rule_resources("ideal_models_table"),
    shell:
        "$DIFFUSION_REGIMES ideal-models-table --seed {params.seed} --summaries {input.summaries}"
        " --sweeps {input.sweeps} --out {output.table} 2> {log}"


if ideal_datasets():
    TARGETS.extend(["results/tables/ideal_models.csv",
                    *expand("results/figures/ideal_models_{dataset}.pdf", dataset=ideal_datasets())])
