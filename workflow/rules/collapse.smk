# Collapse stage: excess entropy f^e(t)/alpha of each training prefix (docs/science.md section 2).


rule regimes_entropy:
    input:
        subset="results/data/{dataset}/subset.pt",
    output:
        table="results/regimes/{dataset}/n{n}/entropy.csv",
    params:
        spec=lambda wc: spec("ideal"),
    log:
        "results/logs/regimes/{dataset}_n{n}_entropy.log",
    threads: rule_threads("regimes_entropy")
    resources:
        **rule_resources("regimes_entropy"),
    shell:
        "{CLI} regimes-entropy --spec {params.spec:q} --seed {config[seed]} --device {config[device]}"
        " --threads {threads}"
        " --subset {input.subset} --n {wildcards.n} --out {output.table} 2> {log}"
