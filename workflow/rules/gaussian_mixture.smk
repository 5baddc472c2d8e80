# Gaussian-mixture stage (docs/science.md section 3): one job per dimension, then merged tables and figures.
# Parts go to results/gaussian_mixture/, merged tables to results/tables/, figures to results/figures/.


rule gm_speciation:
    output:
        table="results/gaussian_mixture/speciation_{engine}_d{d}.csv",
        sidecar=provenance("results/gaussian_mixture/speciation_{engine}_d{d}.csv"),
    params:
        spec=params_of("gm_speciation"),
        pairs=gm_speciation_pairs,
        seed=config["seed"],
    wildcard_constraints:
        engine="full|reduced",
        d=r"\d+",
    log:
        "results/logs/gm_speciation_{engine}_d{d}.log",
    threads: rule_threads("gm_speciation")
    resources:
        **rule_resources("gm_speciation"),
    shell:
        "$DIFFUSION_REGIMES gm-speciation --spec {params.spec:q} --seed {params.seed} --threads {threads}"
        " --d {wildcards.d} --engine {wildcards.engine} --pairs {params.pairs}"
        " --output {output.table} 2> {log}"


rule gm_speciation_table:
    input:
        parts=[f"results/gaussian_mixture/speciation_{engine}_d{d}.csv" for engine, d in GM_SPECIATION_JOBS],
    output:
        table=report(
            "results/tables/gm_speciation.csv",
            caption="../report/gm_speciation_table.rst",
            category=REPORT_GM,
            labels={"kind": "table", "content": "φ(t) simulated vs theory"},
        ),
        table_sidecar=provenance("results/tables/gm_speciation.csv"),
        times=report(
            "results/tables/gm_speciation_times.csv",
            caption="../report/gm_speciation_times.rst",
            category=REPORT_GM,
            labels={"kind": "table", "content": "t_S measured vs ½ log d"},
        ),
        times_sidecar=provenance("results/tables/gm_speciation_times.csv"),
    params:
        spec=params_of("gm_merge"),
        seed=config["seed"],
    log:
        "results/logs/gm_speciation_table.log",
    threads: rule_threads("gm_speciation_table")
    resources:
        **rule_resources("gm_speciation_table"),
    shell:
        "$DIFFUSION_REGIMES gm-merge --spec {params.spec:q} --seed {params.seed} --kind speciation"
        " --inputs {input.parts} --output {output.table} --times-output {output.times} 2> {log}"


rule gm_collapse:
    output:
        table="results/gaussian_mixture/collapse_d{d}.csv",
        sidecar=provenance("results/gaussian_mixture/collapse_d{d}.csv"),
    params:
        spec=params_of("gm_collapse"),
        seed=config["seed"],
        device=config["device"],
    wildcard_constraints:
        d=r"\d+",
    log:
        "results/logs/gm_collapse_d{d}.log",
    # one thread per d: the three jobs, and the single-threaded training job, then share a small CPU
    # instead of a 2-thread job waiting for both cores to be free
    threads: rule_threads("gm_collapse")
    resources:
        **rule_resources("gm_collapse"),
    shell:
        "$DIFFUSION_REGIMES gm-collapse --spec {params.spec:q} --seed {params.seed} --threads {threads}"
        " --device {params.device} --d {wildcards.d} --output {output.table} 2> {log}"


rule gm_collapse_table:
    input:
        parts=expand("results/gaussian_mixture/collapse_d{d}.csv", d=config["gaussian_mixture"]["collapse"]["dims"]),
    output:
        table=report(
            "results/tables/gm_collapse.csv",
            caption="../report/gm_collapse_table.rst",
            category=REPORT_GM,
            labels={"kind": "table", "content": "f^e/α and t_C vs theory"},
        ),
        sidecar=provenance("results/tables/gm_collapse.csv"),
    params:
        spec=params_of("gm_merge"),
        seed=config["seed"],
    log:
        "results/logs/gm_collapse_table.log",
    threads: rule_threads("gm_collapse_table")
    resources:
        **rule_resources("gm_collapse_table"),
    shell:
        "$DIFFUSION_REGIMES gm-merge --spec {params.spec:q} --seed {params.seed} --kind collapse"
        " --inputs {input.parts} --output {output.table} 2> {log}"


rule gm_collapse_law:
    output:
        table=report(
            "results/tables/gm_collapse_law.csv",
            caption="../report/gm_collapse_law_table.rst",
            category=REPORT_GM,
            labels={"kind": "table", "content": "t_C(α) over (n, d)"},
        ),
        sidecar=provenance("results/tables/gm_collapse_law.csv"),
    params:
        spec=params_of("gm_collapse_law"),
        seed=config["seed"],
        device=config["device"],
    log:
        "results/logs/gm_collapse_law.log",
    # default 1 thread: small matmuls; overlaps the single-threaded full-d speciation check
    threads: rule_threads("gm_collapse_law")
    resources:
        **rule_resources("gm_collapse_law"),
    shell:
        "$DIFFUSION_REGIMES gm-collapse-law --spec {params.spec:q} --seed {params.seed} --threads {threads}"
        " --device {params.device} --output {output.table} 2> {log}"


rule gm_figures:
    input:
        speciation="results/tables/gm_speciation.csv",
        speciation_times="results/tables/gm_speciation_times.csv",
        collapse="results/tables/gm_collapse.csv",
        law="results/tables/gm_collapse_law.csv",
    output:
        # the CLI writes each PNG beside its PDF; the report shows the PNG inline and links the PDF
        speciation=report("results/figures/gm_speciation.pdf", caption="../report/pdf.rst", category=REPORT_PDF),
        collapse=report("results/figures/gm_collapse.pdf", caption="../report/pdf.rst", category=REPORT_PDF),
        law=report("results/figures/gm_collapse_law.pdf", caption="../report/pdf.rst", category=REPORT_PDF),
        potential=report("results/figures/gm_potential.pdf", caption="../report/pdf.rst", category=REPORT_PDF),
        pngs=[
            report(
                f"results/figures/{name}.png",
                caption=f"../report/{name}.rst",
                category=REPORT_GM,
                labels={"kind": "figure", "content": content},
            )
            for name, content in GM_FIGURE_CONTENT.items()
        ],
        sidecars=[provenance(f"results/figures/{name}.{ext}") for name in GM_FIGURE_CONTENT for ext in ("pdf", "png")],
    params:
        spec=params_of("gm_figures"),
        seed=config["seed"],
    log:
        "results/logs/gm_figures.log",
    threads: rule_threads("gm_figures")
    resources:
        **rule_resources("gm_figures"),
    shell:
        "$DIFFUSION_REGIMES gm-figures --spec {params.spec:q} --seed {params.seed}"
        " --speciation {input.speciation} --speciation-times {input.speciation_times}"
        " --collapse {input.collapse} --law {input.law}"
        " --out-speciation {output.speciation} --out-collapse {output.collapse}"
        " --out-law {output.law} --out-potential {output.potential} 2> {log}"


TARGETS.extend(
    [
        "results/tables/gm_speciation.csv",
        "results/tables/gm_speciation_times.csv",
        "results/tables/gm_collapse.csv",
        "results/tables/gm_collapse_law.csv",
    ]
    + [f"results/figures/{name}.{ext}" for name in GM_FIGURE_CONTENT for ext in ("pdf", "png")]
)
