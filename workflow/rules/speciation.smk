# Speciation stage (docs/science.md, "Speciation as Bayes classification"): equal-mean and nested Gaussian
# mixtures against log d, the Gaussian-class predictor of t_S for class pairs, and exact-score cloning of
# real pairs to test it.  Parts go to results/speciation/, tables to results/tables/, figures to
# results/figures/.


rule speciation_gm:
    output:
        curves="results/speciation/gm_curves.csv",
        times="results/speciation/gm_times.csv",
        slopes=report(
            "results/tables/speciation_gm_slopes.csv",
            caption="../report/speciation_gm_slopes.rst",
            category=REPORT_SPECIATION,
            labels={"kind": "table", "content": "t_S against log d: slopes"},
        ),
        sidecars=[
            provenance(p)
            for p in (
                "results/speciation/gm_curves.csv",
                "results/speciation/gm_times.csv",
                "results/tables/speciation_gm_slopes.csv",
            )
        ],
    params:
        spec=params_of("speciation_gm"),
        seed=config["seed"],
    log:
        "results/logs/speciation_gm.log",
    threads: rule_threads("speciation_gm")
    resources:
        **rule_resources("speciation_gm"),
    shell:
        "$DIFFUSION_REGIMES speciation-gm --spec {params.spec:q} --seed {params.seed} --threads {threads}"
        " --curves {output.curves} --times {output.times} --slopes {output.slopes} 2> {log}"


rule speciation_predict:
    input:
        subsets=[f"results/data/{name}/subset.pt" for name in SPECIATION["datasets"]],
        raw=[speciation_fashion_folder()] if SPECIATION["fashion"] else [],
        # ½ log Λ and ½ log λ_Δ of the 45 pairs come from the spectra stage
        pairs=["results/tables/fashion_pairs.csv"] if SPECIATION["fashion"] else [],
    output:
        table="results/speciation/predictions.csv",
        curves="results/speciation/predicted_curves.csv",
        sidecars=[provenance("results/speciation/predictions.csv"), provenance("results/speciation/predicted_curves.csv")],
    params:
        spec=params_of("speciation_predict"),
        seed=config["seed"],
        subsets=" ".join(f"--subset {name}=results/data/{name}/subset.pt" for name in SPECIATION["datasets"]),
        fashion=(
            f"--fashion {speciation_fashion_folder()} --fashion-pairs results/tables/fashion_pairs.csv"
            if SPECIATION["fashion"]
            else ""
        ),
    log:
        "results/logs/speciation_predict.log",
    threads: rule_threads("speciation_predict")
    resources:
        **rule_resources("speciation_predict"),
    shell:
        "$DIFFUSION_REGIMES speciation-predict --spec {params.spec:q} --seed {params.seed} --threads {threads}"
        " {params.subsets} {params.fashion} --output {output.table} --curves {output.curves} 2> {log}"


rule speciation_measure_subset:
    input:
        subset="results/data/{dataset}/subset.pt",
    output:
        row="results/speciation/measured/{dataset}.csv",
        branches="results/speciation/measured/{dataset}_branches.csv",
        sidecars=[
            provenance("results/speciation/measured/{dataset}.csv"),
            provenance("results/speciation/measured/{dataset}_branches.csv"),
        ],
    params:
        spec=params_of("speciation_measure"),
        seed=config["seed"],
        chunks="results/speciation/chunks/{dataset}",
    wildcard_constraints:
        dataset="|".join(SPECIATION["datasets"]) or "^$",
    log:
        "results/logs/speciation_measure_{dataset}.log",
    threads: rule_threads("speciation_measure_subset")
    resources:
        **rule_resources("speciation_measure_subset"),
    shell:
        "$DIFFUSION_REGIMES speciation-measure --spec {params.spec:q} --seed {params.seed} --threads {threads}"
        " --subset {input.subset} --source {wildcards.dataset} --chunk-dir {params.chunks}"
        " --output {output.row} --branches {output.branches} 2> {log}"


rule speciation_measure_fashion:
    input:
        raw=speciation_fashion_folder(),
    output:
        row="results/speciation/fashion/{pair}.csv",
        branches="results/speciation/fashion/{pair}_branches.csv",
        sidecars=[
            provenance("results/speciation/fashion/{pair}.csv"),
            provenance("results/speciation/fashion/{pair}_branches.csv"),
        ],
    params:
        spec=params_of("speciation_measure"),
        seed=config["seed"],
        classes=lambda wc: " ".join(f"{name!r}" for name in SPECIATION_PAIRS[wc.pair]),
        chunks="results/speciation/chunks/{pair}",
    wildcard_constraints:
        pair="|".join(SPECIATION_PAIRS) or "^$",
    log:
        "results/logs/speciation_measure_{pair}.log",
    threads: rule_threads("speciation_measure_fashion")
    resources:
        **rule_resources("speciation_measure_fashion"),
    shell:
        "$DIFFUSION_REGIMES speciation-measure --spec {params.spec:q} --seed {params.seed} --threads {threads}"
        " --fashion {input.raw} --pair {params.classes} --chunk-dir {params.chunks}"
        " --output {output.row} --branches {output.branches} 2> {log}"


rule speciation_groups:
    input:
        raw=speciation_fashion_folder(),
    output:
        curves="results/speciation/four_class.csv",
        summary="results/speciation/four_class.json",
        sidecars=[provenance("results/speciation/four_class.csv"), provenance("results/speciation/four_class.json")],
    params:
        spec=params_of("speciation_groups"),
        seed=config["seed"],
    log:
        "results/logs/speciation_groups.log",
    threads: rule_threads("speciation_groups")
    resources:
        **rule_resources("speciation_groups"),
    shell:
        "$DIFFUSION_REGIMES speciation-groups --spec {params.spec:q} --seed {params.seed} --threads {threads}"
        " --fashion {input.raw} --output {output.curves} --summary {output.summary} 2> {log}"


rule speciation_table:
    input:
        predictions="results/speciation/predictions.csv",
        measured=speciation_measured,
    output:
        table=report(
            "results/tables/speciation_predictors.csv",
            caption="../report/speciation_predictors.rst",
            category=REPORT_SPECIATION,
            labels={"kind": "table", "content": "predictors of t_S on real pairs"},
        ),
        rms=report(
            "results/tables/speciation_rms.csv",
            caption="../report/speciation_predictors.rst",
            category=REPORT_SPECIATION,
            labels={"kind": "table", "content": "RMS error of each predictor"},
        ),
        pdf=report("results/figures/speciation_predictors.pdf", caption="../report/pdf.rst", category=REPORT_PDF),
        png=report(
            "results/figures/speciation_predictors.png",
            caption="../report/speciation_predictors.rst",
            category=REPORT_SPECIATION,
            labels={"kind": "figure", "content": "predicted against measured t_S"},
        ),
        sidecars=[provenance("results/tables/speciation_predictors.csv"), provenance("results/tables/speciation_rms.csv")]
        + with_provenance_only("results/figures/speciation_predictors"),
    params:
        spec=params_of("speciation_table"),
        seed=config["seed"],
    log:
        "results/logs/speciation_table.log",
    threads: rule_threads("speciation_table")
    resources:
        **rule_resources("speciation_table"),
    shell:
        "$DIFFUSION_REGIMES speciation-table --spec {params.spec:q} --seed {params.seed}"
        " --predictions {input.predictions} --measured {input.measured} --output {output.table}"
        " --rms {output.rms} --figure {output.pdf} 2> {log}"


rule speciation_gm_figure:
    input:
        curves="results/speciation/gm_curves.csv",
        times="results/speciation/gm_times.csv",
        slopes="results/tables/speciation_gm_slopes.csv",
    output:
        pdf=report("results/figures/speciation_gm.pdf", caption="../report/pdf.rst", category=REPORT_PDF),
        png=report(
            "results/figures/speciation_gm.png",
            caption="../report/speciation_gm.rst",
            category=REPORT_SPECIATION,
            labels={"kind": "figure", "content": "t_S against log d"},
        ),
        sidecars=with_provenance_only("results/figures/speciation_gm"),
    params:
        spec=params_of("speciation_figures"),
        seed=config["seed"],
    log:
        "results/logs/speciation_gm_figure.log",
    threads: rule_threads("speciation_gm_figure")
    resources:
        **rule_resources("speciation_gm_figure"),
    shell:
        "$DIFFUSION_REGIMES speciation-figures --spec {params.spec:q} --seed {params.seed}"
        " --curves {input.curves} --times {input.times} --slopes {input.slopes} --out-gm {output.pdf} 2> {log}"


rule speciation_groups_figure:
    input:
        curves="results/speciation/four_class.csv",
    output:
        pdf=report("results/figures/speciation_four_class.pdf", caption="../report/pdf.rst", category=REPORT_PDF),
        png=report(
            "results/figures/speciation_four_class.png",
            caption="../report/speciation_four_class.rst",
            category=REPORT_SPECIATION,
            labels={"kind": "figure", "content": "four classes in two groups"},
        ),
        sidecars=with_provenance_only("results/figures/speciation_four_class"),
    params:
        spec=params_of("speciation_figures"),
        seed=config["seed"],
    log:
        "results/logs/speciation_groups_figure.log",
    threads: rule_threads("speciation_groups_figure")
    resources:
        **rule_resources("speciation_groups_figure"),
    shell:
        "$DIFFUSION_REGIMES speciation-figures --spec {params.spec:q} --seed {params.seed}"
        " --groups {input.curves} --out-groups {output.pdf} 2> {log}"


if SPECIATION["gm_enabled"]:
    TARGETS.extend(["results/tables/speciation_gm_slopes.csv", "results/figures/speciation_gm.pdf"])
if SPECIATION_PREDICTS:
    TARGETS.extend(["results/tables/speciation_predictors.csv", "results/figures/speciation_predictors.pdf"])
if SPECIATION_GROUPS:
    TARGETS.extend(["results/speciation/four_class.json", "results/figures/speciation_four_class.pdf"])
