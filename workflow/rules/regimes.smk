# Regimes stage: speciation and collapse of a model on real data (docs/science.md section 5).  One name
# throughout: this file, config `regimes:`, the commands `regimes-*` (cli/regimes.py), the package module
# regimes.py and the folder results/regimes/.  The model is a wildcard: `exact` (the exact empirical score
# of the training prefix) and `unet` (the DDPM UNet of the train stage, measured on its own training set:
# the whole prepared subset).  Which (model, n, sampler) sweeps run is decided in common.smk (regimes_runs):
# every sweep uses the DDPM sampler, and at the whole subset the samplers of `regimes.samplers` are compared.
# The U-turns (regimes_uturn) and the collapse law over (resolution, n) (regimes_law) reuse the same
# machinery.


rule regimes_entropy:
    input:
        subset="results/data/{dataset}/subset.pt",
    output:
        table="results/regimes/{dataset}/n{n}/entropy.csv",
        sidecar=provenance("results/regimes/{dataset}/n{n}/entropy.csv"),
    params:
        spec=params_of("regimes_entropy"),
        seed=config["seed"],
        device=config["device"],
    log:
        "results/logs/regimes/{dataset}_n{n}_entropy.log",
    threads: rule_threads("regimes_entropy")
    resources:
        **rule_resources("regimes_entropy"),
    shell:
        "$DIFFUSION_REGIMES regimes-entropy --spec {params.spec:q} --seed {params.seed} --device {params.device}"
        " --threads {threads} --subset {input.subset} --n {wildcards.n} --out {output.table} 2> {log}"


rule regimes_clone:
    input:
        unpack(regimes_model_inputs),
        subset="results/data/{dataset}/subset.pt",
        classifier="results/classifier/{dataset}/classifier.pt",
        spectrum="results/spectra/{dataset}.json",
        entropy="results/regimes/{dataset}/n{n}/entropy.csv",
    output:
        branches="results/regimes/{dataset}/n{n}/{model}/{sampler}/branches.csv",
        trajectories="results/regimes/{dataset}/n{n}/{model}/{sampler}/trajectories.csv",
        summary="results/regimes/{dataset}/n{n}/{model}/{sampler}/summary.json",
        strip="results/regimes/{dataset}/n{n}/{model}/{sampler}/strip.pt",
        samples="results/regimes/{dataset}/n{n}/{model}/{sampler}/samples.pt",
        sidecars=[
            provenance(f"results/regimes/{{dataset}}/n{{n}}/{{model}}/{{sampler}}/{name}")
            for name in ("branches.csv", "trajectories.csv", "summary.json", "strip.pt", "samples.pt")
        ],
    params:
        spec=params_of("regimes_clone"),
        # the keys of one model, resolved here: a UNet setting never re-runs an exact-score sweep
        pairs=regimes_sweep_pairs,
        steps=lambda wc: REGIMES.steps_for(wc.model),
        variance=lambda wc: REGIMES.variance_for(wc.model),
        seed=config["seed"],
        device=config["device"],
        checkpoint=lambda wc, input: f"--checkpoint {input.checkpoint}" if "checkpoint" in input.keys() else "",
        # completed chunks of pairs: not an output, so a killed sweep resumes from them
        chunk_dir=lambda wc: f"results/regimes/{wc.dataset}/n{wc.n}/{wc.model}/{wc.sampler}/chunks",
    log:
        "results/logs/regimes/{dataset}_n{n}_{model}_{sampler}_clone.log",
    # resources.regimes_clone.threads (default 1): on a small shared CPU one thread per job and jobs in
    # parallel is fastest; the UNet sweeps (resources.regimes_clone_unet.threads) run last, after training,
    # when the other jobs are done, so the default gives them both cores
    threads: lambda wc: rule_threads("regimes_clone_unet" if wc.model == "unet" else "regimes_clone")
    resources:
        **rule_resources("regimes_clone"),
    shell:
        "$DIFFUSION_REGIMES regimes-clone --spec {params.spec:q} --seed {params.seed} --device {params.device}"
        " --threads {threads} --dataset {wildcards.dataset} --subset {input.subset}"
        " --classifier {input.classifier} --spectrum {input.spectrum} --entropy {input.entropy}"
        " --n {wildcards.n} --model {wildcards.model} {params.checkpoint} --pairs {params.pairs}"
        " --steps {params.steps} --variance {params.variance} --sampler {wildcards.sampler}"
        " --chunk-dir {params.chunk_dir}"
        " --branches {output.branches} --trajectories {output.trajectories} --summary {output.summary}"
        " --strip {output.strip} --samples {output.samples} 2> {log}"


rule regimes_row:
    input:
        summary="results/regimes/{dataset}/n{n}/{model}/{sampler}/summary.json",
        entropy="results/regimes/{dataset}/n{n}/entropy.csv",
        spectrum="results/spectra/{dataset}.json",
    output:
        row="results/regimes/{dataset}/n{n}/{model}/{sampler}/row.csv",
        sidecar=provenance("results/regimes/{dataset}/n{n}/{model}/{sampler}/row.csv"),
    params:
        spec=params_of("regimes_row"),
        seed=config["seed"],
    log:
        "results/logs/regimes/{dataset}_n{n}_{model}_{sampler}_row.log",
    threads: rule_threads("regimes_row")
    resources:
        **rule_resources("regimes_row"),
    shell:
        "$DIFFUSION_REGIMES regimes-row --spec {params.spec:q} --summary {input.summary}"
        " --entropy {input.entropy} --spectrum {input.spectrum} --dataset {wildcards.dataset}"
        " --model {wildcards.model} --seed {params.seed} --out {output.row} 2> {log}"


rule regimes_table:
    input:
        rows=regimes_rows,
    output:
        table=report(
            "results/tables/regimes.csv",
            caption="../report/regimes_table.rst",
            category=REPORT_REGIMES,
            labels={"kind": "table", "content": "t_S and t_C predicted vs measured"},
        ),
        sidecar=provenance("results/tables/regimes.csv"),
    params:
        seed=config["seed"],
    log:
        "results/logs/regimes/table.log",
    threads: rule_threads("regimes_table")
    resources:
        **rule_resources("regimes_table"),
    shell:
        "$DIFFUSION_REGIMES regimes-table --rows {input.rows} --seed {params.seed} --out {output.table} 2> {log}"


rule regimes_figures:
    input:
        table="results/tables/regimes.csv",
        subset="results/data/{dataset}/subset.pt",
        entropy=regimes_top_entropy,
        branches=regimes_sweep_files("branches.csv"),
        trajectories=regimes_sweep_files("trajectories.csv"),
        samples=regimes_sweep_files("samples.pt"),
        strip=regimes_sweep_files("strip.pt"),
    output:
        phi=report("results/figures/regimes_phi_{dataset}.pdf", caption="../report/pdf.rst", category=REPORT_PDF),
        collapse=report(
            "results/figures/regimes_collapse_{dataset}.pdf", caption="../report/pdf.rst", category=REPORT_PDF
        ),
        strip=report("results/figures/regimes_strip_{dataset}.pdf", caption="../report/pdf.rst", category=REPORT_PDF),
        neighbours=report(
            "results/figures/regimes_neighbours_{dataset}.pdf", caption="../report/pdf.rst", category=REPORT_PDF
        ),
        pngs=[
            report(
                f"results/figures/regimes_{stem}_{{dataset}}.png",
                caption=f"../report/regimes_{stem}.rst",
                category=REPORT_REGIMES,
                labels=report_labels("figure", f"regimes_{stem}"),
            )
            for stem in REGIMES_FIGURES
        ],
        sidecars=[
            provenance(f"results/figures/regimes_{stem}_{{dataset}}.{ext}")
            for stem in REGIMES_FIGURES
            for ext in ("png", "pdf")
        ],
    params:
        sweeps=regimes_sweep_keys,
        seed=config["seed"],
    log:
        "results/logs/regimes/{dataset}_figures.log",
    threads: rule_threads("regimes_figures")
    resources:
        **rule_resources("regimes_figures"),
    shell:
        "$DIFFUSION_REGIMES regimes-figures --table {input.table} --dataset {wildcards.dataset}"
        " --sweeps {params.sweeps} --branches {input.branches} --trajectories {input.trajectories}"
        " --samples {input.samples} --strip {input.strip} --entropy {input.entropy} --subset {input.subset}"
        " --out-phi {output.phi} --out-collapse {output.collapse} --out-strip {output.strip}"
        " --out-neighbours {output.neighbours} --seed {params.seed} 2> {log}"


rule regimes_uturn:
    input:
        unpack(regimes_model_inputs),
        subset="results/data/{dataset}/subset.pt",
        classifier="results/classifier/{dataset}/classifier.pt",
        spectrum="results/spectra/{dataset}.json",
        entropy="results/regimes/{dataset}/n{n}/entropy.csv",
    output:
        table="results/regimes/{dataset}/n{n}/{model}/uturn.csv",
        sidecar=provenance("results/regimes/{dataset}/n{n}/{model}/uturn.csv"),
    params:
        spec=params_of("regimes_uturn"),
        samplers=lambda wc: REGIMES.samplers_for(wc.dataset),
        starts=lambda wc: REGIMES.uturn_starts_for(wc.model),
        steps=lambda wc: REGIMES.steps_for(wc.model),
        variance=lambda wc: REGIMES.variance_for(wc.model),
        seed=config["seed"],
        device=config["device"],
        checkpoint=lambda wc, input: f"--checkpoint {input.checkpoint}" if "checkpoint" in input.keys() else "",
    log:
        "results/logs/regimes/{dataset}_n{n}_{model}_uturn.log",
    threads: lambda wc: rule_threads("regimes_clone_unet" if wc.model == "unet" else "regimes_uturn")
    resources:
        **rule_resources("regimes_uturn"),
    shell:
        "$DIFFUSION_REGIMES regimes-uturn --spec {params.spec:q} --seed {params.seed} --device {params.device}"
        " --threads {threads} --dataset {wildcards.dataset} --subset {input.subset}"
        " --classifier {input.classifier} --spectrum {input.spectrum} --entropy {input.entropy}"
        " --n {wildcards.n} --model {wildcards.model} {params.checkpoint} --samplers {params.samplers}"
        " --starts {params.starts} --steps {params.steps} --variance {params.variance} --out {output.table}"
        " 2> {log}"


rule regimes_uturn_table:
    input:
        tables=regimes_uturns,
    output:
        table=report(
            "results/tables/uturn.csv",
            caption="../report/uturn_table.rst",
            category=REPORT_REGIMES,
            labels={"kind": "table", "content": "U-turn curves per model, sampler and start"},
        ),
        sidecar=provenance("results/tables/uturn.csv"),
    params:
        seed=config["seed"],
    log:
        "results/logs/regimes/uturn_table.log",
    threads: rule_threads("regimes_uturn_table")
    resources:
        **rule_resources("regimes_uturn_table"),
    shell:
        "$DIFFUSION_REGIMES regimes-gather --tables {input.tables} --seed {params.seed} --out {output.table} 2> {log}"


rule regimes_law:
    input:
        subset="results/data/{dataset}/subset.pt",
    output:
        row="results/regimes/{dataset}/law/r{side}_n{law_n}.csv",
        sidecar=provenance("results/regimes/{dataset}/law/r{side}_n{law_n}.csv"),
    params:
        spec=params_of("regimes_law"),
        seed=config["seed"],
        device=config["device"],
    log:
        "results/logs/regimes/{dataset}_law_r{side}_n{law_n}.log",
    threads: rule_threads("regimes_law")
    resources:
        **rule_resources("regimes_law"),
    shell:
        "$DIFFUSION_REGIMES regimes-law --spec {params.spec:q} --seed {params.seed} --device {params.device}"
        " --threads {threads} --subset {input.subset} --resolution {wildcards.side} --n {wildcards.law_n}"
        " --out {output.row} 2> {log}"


rule regimes_law_table:
    input:
        tables=regimes_law_cells,
    output:
        table=report(
            "results/tables/regimes_law.csv",
            caption="../report/regimes_law_table.rst",
            category=REPORT_REGIMES,
            labels={"kind": "table", "content": "collapse law on real data over (resolution, n)"},
        ),
        sidecar=provenance("results/tables/regimes_law.csv"),
    params:
        seed=config["seed"],
    log:
        "results/logs/regimes/law_table.log",
    threads: rule_threads("regimes_law_table")
    resources:
        **rule_resources("regimes_law_table"),
    shell:
        "$DIFFUSION_REGIMES regimes-gather --tables {input.tables} --seed {params.seed} --out {output.table} 2> {log}"


# One figure per dataset for each of the three questions beyond the paper (law, U-turn, sampler).
rule regimes_law_figure:
    input:
        table="results/tables/regimes_law.csv",
    output:
        pdf=report("results/figures/regimes_law_{dataset}.pdf", caption="../report/pdf.rst", category=REPORT_PDF),
        png=report(
            "results/figures/regimes_law_{dataset}.png",
            caption="../report/regimes_law.rst",
            category=REPORT_REGIMES,
            labels=report_labels("figure", "collapse law on real data"),
        ),
        sidecars=with_provenance_only("results/figures/regimes_law_{dataset}"),
    params:
        seed=config["seed"],
    log:
        "results/logs/regimes/{dataset}_law_figure.log",
    threads: rule_threads("regimes_law_figure")
    resources:
        **rule_resources("regimes_law_figure"),
    shell:
        "$DIFFUSION_REGIMES regimes-law-figure --table {input.table} --dataset {wildcards.dataset}"
        " --seed {params.seed} --out {output.pdf} 2> {log}"


rule regimes_uturn_figure:
    input:
        table="results/tables/uturn.csv",
    output:
        pdf=report("results/figures/regimes_uturn_{dataset}.pdf", caption="../report/pdf.rst", category=REPORT_PDF),
        png=report(
            "results/figures/regimes_uturn_{dataset}.png",
            caption="../report/regimes_uturn.rst",
            category=REPORT_REGIMES,
            labels=report_labels("figure", "U-turn curves"),
        ),
        sidecars=with_provenance_only("results/figures/regimes_uturn_{dataset}"),
    params:
        seed=config["seed"],
    log:
        "results/logs/regimes/{dataset}_uturn_figure.log",
    threads: rule_threads("regimes_uturn_figure")
    resources:
        **rule_resources("regimes_uturn_figure"),
    shell:
        "$DIFFUSION_REGIMES regimes-uturn-figure --table {input.table} --dataset {wildcards.dataset}"
        " --seed {params.seed} --out {output.pdf} 2> {log}"


rule regimes_samplers_figure:
    input:
        table="results/tables/regimes.csv",
        uturn="results/tables/uturn.csv",
    output:
        pdf=report(
            "results/figures/regimes_samplers_{dataset}.pdf", caption="../report/pdf.rst", category=REPORT_PDF
        ),
        png=report(
            "results/figures/regimes_samplers_{dataset}.png",
            caption="../report/regimes_samplers.rst",
            category=REPORT_REGIMES,
            labels=report_labels("figure", "does the sampler matter"),
        ),
        sidecars=with_provenance_only("results/figures/regimes_samplers_{dataset}"),
    params:
        seed=config["seed"],
    log:
        "results/logs/regimes/{dataset}_samplers_figure.log",
    threads: rule_threads("regimes_samplers_figure")
    resources:
        **rule_resources("regimes_samplers_figure"),
    shell:
        "$DIFFUSION_REGIMES regimes-samplers-figure --table {input.table} --uturn {input.uturn}"
        " --dataset {wildcards.dataset} --seed {params.seed} --out {output.pdf} 2> {log}"


TARGETS.append("results/tables/regimes.csv")
if REGIMES.uturn:
    TARGETS.append("results/tables/uturn.csv")
    TARGETS.extend(f"results/figures/regimes_uturn_{dataset}.pdf" for dataset in config["regimes"]["datasets"])
    TARGETS.extend(f"results/figures/regimes_samplers_{dataset}.pdf" for dataset in config["regimes"]["datasets"]
                   if len(REGIMES.samplers_for(dataset)) > 1)
if REGIMES.law_datasets:
    TARGETS.append("results/tables/regimes_law.csv")
    TARGETS.extend(f"results/figures/regimes_law_{dataset}.pdf" for dataset in REGIMES.law_datasets)
TARGETS.extend(
    f"results/figures/regimes_{stem}_{dataset}.pdf"
    for dataset in config["regimes"]["datasets"]
    for stem in REGIMES_FIGURES
)
