# Data layer: raw images -> the prepared two-class subset every later stage reads (docs/science.md section 4).


wildcard_constraints:
    dataset="|".join(config.get("datasets", {})) or "no-dataset",


rule prepare_subset:
    output:
        pt="results/data/{dataset}/subset.pt",
        meta="results/data/{dataset}/subset.json",
    params:
        spec=lambda w: spec("datasets", w.dataset),
    log:
        "results/logs/prepare_subset/{dataset}.log",
    threads: rule_threads("prepare_subset")
    resources:
        **rule_resources("prepare_subset"),
    shell:
        "{CLI} prepare-subset --spec {params.spec:q} --name {wildcards.dataset} --output {output.pt} 2> {log}"
