# Gaussian-mixture study (docs/science.md section 3): one job per dimension, then merged tables and figures.
GM = config["gaussian_mixture"]
GM_SPEC = GM["speciation"]
GM_TABLES = "results/tables"
GM_FIGURES = "results/figures"
GM_PARTS = "results/gaussian_mixture"

# (engine, d, pairs) of every speciation job: the figure's engine for each d, plus the full-d check
GM_SPECIATION_JOBS = [(GM_SPEC["engine"], d) for d in GM_SPEC["dims"]]
if GM_SPEC["check_pairs"] > 0 and GM_SPEC["engine"] != "full":
    GM_SPECIATION_JOBS.append(("full", GM_SPEC["check_dim"]))


def gm_speciation_pairs(wildcards):
    full_check = wildcards.engine == "full" and GM_SPEC["engine"] != "full"
    return GM_SPEC["check_pairs"] if full_check else GM_SPEC["pairs"]


rule gm_speciation:
    output:
        with_provenance(GM_PARTS + "/speciation_{engine}_d{d}.csv"),
    params:
        spec=spec("gaussian_mixture"),
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
        "{CLI} gm-speciation --spec {params.spec:q} --seed {params.seed} --threads {threads}"
        " --d {wildcards.d} --engine {wildcards.engine} --pairs {params.pairs}"
        " --output {output[0]} 2> {log}"


rule gm_speciation_table:
    input:
        [f"{GM_PARTS}/speciation_{engine}_d{d}.csv" for engine, d in GM_SPECIATION_JOBS],
    output:
        report(GM_TABLES + "/gm_speciation.csv", caption="../report/gm_speciation_table.rst",
               category=REPORT_GM, labels={"kind": "table", "content": "φ(t) simulated vs theory"}),
        provenance(GM_TABLES + "/gm_speciation.csv"),
        report(GM_TABLES + "/gm_speciation_times.csv", caption="../report/gm_speciation_times.rst",
               category=REPORT_GM, labels={"kind": "table", "content": "t_S measured vs ½ log d"}),
        provenance(GM_TABLES + "/gm_speciation_times.csv"),
    params:
        spec=spec("gaussian_mixture"),
        seed=config["seed"],
    log:
        "results/logs/gm_speciation_table.log",
    threads: rule_threads("gm_speciation_table")
    resources:
        **rule_resources("gm_speciation_table"),
    shell:
        "{CLI} gm-merge --spec {params.spec:q} --seed {params.seed} --kind speciation --inputs {input}"
        " --output {output[0]} --times-output {output[2]} 2> {log}"


rule gm_collapse:
    output:
        with_provenance(GM_PARTS + "/collapse_d{d}.csv"),
    params:
        spec=spec("gaussian_mixture"),
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
        "{CLI} gm-collapse --spec {params.spec:q} --seed {params.seed} --threads {threads}"
        " --device {params.device} --d {wildcards.d} --output {output[0]} 2> {log}"


rule gm_collapse_table:
    input:
        expand(GM_PARTS + "/collapse_d{d}.csv", d=config["gaussian_mixture"]["collapse"]["dims"]),
    output:
        report(GM_TABLES + "/gm_collapse.csv", caption="../report/gm_collapse_table.rst",
               category=REPORT_GM, labels={"kind": "table", "content": "f^e/α and t_C vs theory"}),
        provenance(GM_TABLES + "/gm_collapse.csv"),
    params:
        spec=spec("gaussian_mixture"),
        seed=config["seed"],
    log:
        "results/logs/gm_collapse_table.log",
    threads: rule_threads("gm_collapse_table")
    resources:
        **rule_resources("gm_collapse_table"),
    shell:
        "{CLI} gm-merge --spec {params.spec:q} --seed {params.seed} --kind collapse --inputs {input}"
        " --output {output[0]} 2> {log}"


rule gm_collapse_law:
    output:
        report(GM_TABLES + "/gm_collapse_law.csv", caption="../report/gm_collapse_law_table.rst",
               category=REPORT_GM, labels={"kind": "table", "content": "t_C(α) over (n, d)"}),
        provenance(GM_TABLES + "/gm_collapse_law.csv"),
    params:
        spec=spec("gaussian_mixture"),
        seed=config["seed"],
        device=config["device"],
    log:
        "results/logs/gm_collapse_law.log",
    # default 1 thread: small matmuls; overlaps the single-threaded full-d speciation check
    threads: rule_threads("gm_collapse_law")
    resources:
        **rule_resources("gm_collapse_law"),
    shell:
        "{CLI} gm-collapse-law --spec {params.spec:q} --seed {params.seed} --threads {threads}"
        " --device {params.device} --output {output[0]} 2> {log}"


# figure -> its label in the report
GM_FIGURE_CONTENT = {
    "gm_speciation": "Fig. 2: φ(t) against t/t_S",
    "gm_collapse": "Fig. 3: f^e(t)/α",
    "gm_collapse_law": "t_C against α = log(n)/d",
    "gm_potential": "potential V(q, t) around t_S",
}
GM_FIGURE_NAMES = list(GM_FIGURE_CONTENT)


rule gm_figures:
    input:
        speciation=GM_TABLES + "/gm_speciation.csv",
        speciation_times=GM_TABLES + "/gm_speciation_times.csv",
        collapse=GM_TABLES + "/gm_collapse.csv",
        law=GM_TABLES + "/gm_collapse_law.csv",
    output:
        # the CLI writes each PNG beside its PDF; the report shows the PNG inline and links the PDF
        speciation=report(GM_FIGURES + "/gm_speciation.pdf", caption="../report/pdf.rst", category=REPORT_PDF),
        collapse=report(GM_FIGURES + "/gm_collapse.pdf", caption="../report/pdf.rst", category=REPORT_PDF),
        law=report(GM_FIGURES + "/gm_collapse_law.pdf", caption="../report/pdf.rst", category=REPORT_PDF),
        potential=report(GM_FIGURES + "/gm_potential.pdf", caption="../report/pdf.rst", category=REPORT_PDF),
        pngs=[
            report(f"{GM_FIGURES}/{name}.png", caption=f"../report/{name}.rst", category=REPORT_GM,
                   labels={"kind": "figure", "content": content})
            for name, content in GM_FIGURE_CONTENT.items()
        ],
        extra=[provenance(f"{GM_FIGURES}/{name}.{ext}") for name in GM_FIGURE_NAMES for ext in ("pdf", "png")],
    params:
        spec=spec("gaussian_mixture"),
        seed=config["seed"],
    log:
        "results/logs/gm_figures.log",
    threads: rule_threads("gm_figures")
    resources:
        **rule_resources("gm_figures"),
    shell:
        "{CLI} gm-figures --spec {params.spec:q} --seed {params.seed}"
        " --speciation {input.speciation} --speciation-times {input.speciation_times}"
        " --collapse {input.collapse} --law {input.law}"
        " --out-speciation {output.speciation} --out-collapse {output.collapse}"
        " --out-law {output.law} --out-potential {output.potential} 2> {log}"


TARGETS.extend(
    [
        GM_TABLES + "/gm_speciation.csv",
        GM_TABLES + "/gm_speciation_times.csv",
        GM_TABLES + "/gm_collapse.csv",
        GM_TABLES + "/gm_collapse_law.csv",
    ]
    + [f"{GM_FIGURES}/{name}.{ext}" for name in GM_FIGURE_NAMES for ext in ("pdf", "png")]
)
