# Learned denoisers (docs/science.md section 6): DDPM training of the UNet on each prepared subset.
#
# Resuming: checkpoints go to results/models/{dataset}/unet/runs/<config hash>/, which is NOT an output
# of the rule.  Snakemake deletes only the declared outputs of a failed or killed job, so the
# checkpoints survive and re-running the rule continues from the newest one (same config hash) with
# bit-identical results.  The declared outputs are written only after the last step.  The trainer holds
# runs/.lock (its PID) while it runs: a second trainer on the same folder refuses, naming that PID.


rule train_ddpm:
    input:
        subset="results/data/{dataset}/subset.pt",
    output:
        checkpoint="results/models/{dataset}/unet/final.pt",
        loss=report(
            "results/tables/ddpm_loss_{dataset}.csv",
            caption="../report/ddpm_loss.rst",
            category=REPORT_LEARNED,
            labels=lambda wc: {"kind": "table", "content": f"training loss, {wc.dataset}"},
        ),
        figure=report(
            "results/figures/ddpm_training_{dataset}.pdf", caption="../report/pdf.rst", category=REPORT_PDF
        ),
        png=report(
            "results/figures/ddpm_training_{dataset}.png",
            caption="../report/ddpm_training.rst",
            category=REPORT_LEARNED,
            labels=lambda wc: {"kind": "figure", "content": f"loss and samples, {wc.dataset}"},
        ),
        sidecars=[
            provenance(p)
            for p in (
                "results/models/{dataset}/unet/final.pt",
                "results/tables/ddpm_loss_{dataset}.csv",
                "results/figures/ddpm_training_{dataset}.pdf",
                "results/figures/ddpm_training_{dataset}.png",
            )
        ],
    params:
        spec=params_of("train_ddpm"),
        unet=params_of("unet"),
        seed=config["seed"],
        device=config["device"],
        run_dir=lambda wc: f"results/models/{wc.dataset}/unet/runs",
    log:
        "results/logs/train_ddpm/{dataset}.log",
    threads: rule_threads("train_ddpm")
    resources:
        **rule_resources("train_ddpm"),
    shell:
        "$DIFFUSION_REGIMES train-ddpm --spec {params.spec:q} --unet-spec {params.unet:q} --seed {params.seed}"
        " --device {params.device} --threads {threads} --dataset {wildcards.dataset}"
        " --subset {input.subset} --run-dir {params.run_dir} --checkpoint {output.checkpoint}"
        " --loss-table {output.loss} --figure {output.figure} 2> {log}"


TARGETS.extend(
    expand(
        ["results/models/{dataset}/unet/final.pt", "results/figures/ddpm_training_{dataset}.pdf"],
        dataset=ddpm_datasets(),
    )
)
