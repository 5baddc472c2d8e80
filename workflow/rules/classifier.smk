# Classifier stage: the two-class labeller of generated samples (docs/science.md section 5).


rule classifier:
    input:
        subset="results/data/{dataset}/subset.pt",
    output:
        checkpoint="results/classifier/{dataset}/classifier.pt",
        accuracy="results/classifier/{dataset}/classifier.json",
    params:
        spec=lambda wc: spec("classifier"),
    log:
        "results/logs/classifier/{dataset}.log",
    # 1 thread: a small CNN on a shared CPU runs far slower on 2 (oversubscription); jobs run side by side
    threads: rule_threads("classifier")
    resources:
        **rule_resources("classifier"),
    shell:
        "{CLI} classifier-train --spec {params.spec:q} --seed {config[seed]} --device {config[device]}"
        " --threads {threads} --subset {input.subset} --out {output.checkpoint} 2> {log}"
