# Learned-score sweeps (docs/science.md section 5 on the UNet of section 6): the trained denoiser goes through
# the same rules as the exact score (regimes_clone / regimes_row of speciation.smk) as model `unet`.
# Included after speciation.smk (its registries) and train.smk (ddpm_datasets, the checkpoint rule).
#
# Training set: train-ddpm fits the UNet on the WHOLE prepared subset, so its rows exist only at
# n = datasets.<name>.n (the `all` of ideal.n_values): phi_C, t̂_C and the memorisation ratio are measured
# against the images it was trained on.  Exact-score rows at the same n sit beside them in regimes.csv.

MODEL_INPUTS["unet"] = lambda wc: {"checkpoint": f"results/models/{wc.dataset}/unet/final.pt"}
MODEL_N_VALUES["unet"] = lambda dataset: (
    (subset_n(dataset),) if dataset in ddpm_datasets() and "unet" in IDEAL.models_for(dataset) else ()
)
REGIMES_MODELS.append("unet")
