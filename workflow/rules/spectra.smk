# Spectra stage: Λ, t_S = ½ log Λ in both conventions, against the paper's Table 1 (docs/science.md 2, 4).


rule spectrum:
    input:
        subset="results/data/{dataset}/subset.pt",
    output:
        row="results/spectra/{dataset}.json",
        row_sidecar=provenance("results/spectra/{dataset}.json"),
        pdf=report("results/figures/scree_{dataset}.pdf", caption="../report/pdf.rst", category=REPORT_PDF),
        png=report(
            "results/figures/scree_{dataset}.png",
            caption="../report/scree.rst",
            category=REPORT_SPECTRA,
            labels=lambda wc: {"kind": "figure", "content": f"covariance spectrum, {wc.dataset}"},
        ),
        sidecars=[provenance(f"results/figures/scree_{{dataset}}.{ext}") for ext in ("pdf", "png")],
    params:
        spec=params_of("spectrum"),
        seed=config["seed"],
    log:
        "results/logs/spectrum/{dataset}.log",
    threads: rule_threads("spectrum")
    resources:
        **rule_resources("spectrum"),
    shell:
        "$DIFFUSION_REGIMES spectrum --spec {params.spec:q} --seed {params.seed} --threads {threads}"
        " --subset {input.subset} --output {output.row} --figure {output.pdf} 2> {log}"


rule spectra_table:
    input:
        rows=expand("results/spectra/{dataset}.json", dataset=list(config.get("datasets", {}))),
        former=repo_path("former/table1.csv"),
    output:
        table=report(
            "results/tables/spectra.csv",
            caption="../report/spectra.rst",
            category=REPORT_SPECTRA,
            labels={"kind": "table", "content": "Λ and t_S vs the paper's Table 1"},
        ),
        sidecar=provenance("results/tables/spectra.csv"),
    params:
        spec=params_of("spectra_table"),
        seed=config["seed"],
    log:
        "results/logs/spectra_table.log",
    threads: rule_threads("spectra_table")
    resources:
        **rule_resources("spectra_table"),
    shell:
        "$DIFFUSION_REGIMES spectra-table --spec {params.spec:q} --seed {params.seed} --former {input.former}"
        " --output {output.table} {input.rows} 2> {log}"


rule fashion_pairs:
    input:
        raw=fashion_folder(),
    output:
        table=report(
            "results/tables/fashion_pairs.csv",
            caption="../report/fashion_pairs.rst",
            category=REPORT_SPECTRA,
            labels={"kind": "table", "content": "all Fashion-MNIST pairs: Λ, λ₁/λ₂, λ_Δ"},
        ),
        sidecar=provenance("results/tables/fashion_pairs.csv"),
        pdf=report("results/figures/fashion_pairs.pdf", caption="../report/pdf.rst", category=REPORT_PDF),
        png=report(
            "results/figures/fashion_pairs.png",
            caption="../report/fashion_pairs.rst",
            category=REPORT_SPECTRA,
            labels={"kind": "figure", "content": "which eigenvalue carries the class difference"},
        ),
        sidecars=[provenance(f"results/figures/fashion_pairs.{ext}") for ext in ("pdf", "png")],
    log:
        "results/logs/fashion_pairs.log",
    threads: rule_threads("fashion_pairs")
    resources:
        **rule_resources("fashion_pairs"),
    shell:
        "$DIFFUSION_REGIMES fashion-pairs --path {input.raw} --threads {threads} --output {output.table}"
        " --figure {output.pdf} 2> {log}"


TARGETS.append("results/tables/spectra.csv")
if config["spectra"]["fashion_pairs"]:
    TARGETS.append("results/tables/fashion_pairs.csv")
TARGETS.extend(f"results/figures/scree_{name}.pdf" for name in config.get("datasets", {}))
