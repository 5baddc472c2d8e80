# Classifier stage: the two-class labeller of generated samples (docs/science.md section 5).


rule classifier:
    input:
        subset="results/data/{dataset}/subset.pt",
    output:
        checkpoint="results/classifier/{dataset}/classifier.pt",
        accuracy="results/classifier/{dataset}/classifier.json",
        sidecar=provenance("results/classifier/{dataset}/classifier.pt"),
    params:
        spec=params_of("classifier"),
        seed=config["seed"],
        device=config["device"],
    log:
        "results/logs/classifier/{dataset}.log",
    # 1 thread: a small CNN on a shared CPU runs far slower on 2 (oversubscription); jobs run side by side
    threads: rule_threads("classifier")
    resources:
        **rule_resources("classifier"),
    shell:
        "$DIFFUSION_REGIMES classifier-train --spec {params.spec:q} --seed {params.seed} --device {params.device}"
        " --threads {threads} --subset {input.subset} --out {output.checkpoint} 2> {log}"
