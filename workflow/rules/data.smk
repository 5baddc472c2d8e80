# Data stage: raw images -> the prepared two-class subset every later stage reads (docs/science.md section 4).


rule prepare_subset:
    input:
        raw=raw_inputs,
    output:
        pt="results/data/{dataset}/subset.pt",
        meta="results/data/{dataset}/subset.json",
        sidecar=provenance("results/data/{dataset}/subset.pt"),
    params:
        spec=dataset_spec,
    log:
        "results/logs/prepare_subset/{dataset}.log",
    threads: rule_threads("prepare_subset")
    resources:
        **rule_resources("prepare_subset"),
    shell:
        "$DIFFUSION_REGIMES prepare-subset --spec {params.spec:q} --name {wildcards.dataset}"
        " --output {output.pt} 2> {log}"
