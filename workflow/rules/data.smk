# Data layer: raw images -> the prepared two-class subset every later stage reads (docs/science.md section 4).
from diffusion_regimes.config import build as build_section


wildcard_constraints:
    dataset="|".join(config.get("datasets", {})) or "no-dataset",


from diffusion_regimes.data import DatasetSpec
from diffusion_regimes.data.freshness import raw_paths


def raw_inputs(wildcards):
    """The raw data of a subset as rule inputs: a dry run names missing data, a newer file re-prepares."""
    entry = config["datasets"][wildcards.dataset]
    spec = build_section(DatasetSpec, entry, where=f"datasets.{wildcards.dataset}")
    paths = raw_paths(spec)
    if spec.format == "cifar10" and spec.download and not paths[0].exists():
        paths = paths[1:]  # the job downloads it
    return [str(p) for p in paths]


rule prepare_subset:
    input:
        raw=raw_inputs,
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
