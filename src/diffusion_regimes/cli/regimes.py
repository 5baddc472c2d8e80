"""Commands of the regimes stage: speciation and collapse of a model on real data (docs/science.md 5).

``regimes-clone``     cloning sweep of one model (``exact`` here; ``unet`` via the same function) on a prefix
``regimes-entropy``   f^e(t)/alpha of a prefix and the t_C it implies (docs/science.md section 2)
``regimes-row``       one row of results/tables/regimes.csv per (dataset, n, model)
``regimes-table``     gather the rows
``regimes-figures``   phi(t) vs t/t_S, phi_C with the t̂_C histogram and f^e/alpha, the image strip
``regimes-uturn``     U-turn (forward-backward) curves of one model on a prefix, for every sampler
``regimes-law``       one cell of the collapse law over (resolution, n)
``regimes-gather``    concatenate per-job tables (the U-turn and collapse-law tables)
``regimes-law-figure``, ``regimes-uturn-figure``, ``regimes-samplers-figure``: their figures
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
from pathlib import Path

import pandas as pd
import torch

from diffusion_regimes.cli.common import (
    add_spec_arguments,
    job_summary,
    load_subset,
    spec_record,
    training_prefix,
)
from diffusion_regimes.config import from_json
from diffusion_regimes.errors import ConfigError, DataError
from diffusion_regimes.provenance import save_torch, write_json, write_table
from diffusion_regimes.regimes import SAMPLERS
from diffusion_regimes.runtime import resolve_device, set_threads
from diffusion_regimes.sampler import VARIANCES
from diffusion_regimes.seeds import derived_seed
from diffusion_regimes.spectrum import t_speciation

log = logging.getLogger(__name__)


def _score(model: str, *, training: torch.Tensor, spec, checkpoint: str | None, device: torch.device):
    """``(score, record)`` of ``model``: ``exact`` (empirical score of the training prefix) or ``unet``.

    ``record`` holds what the regimes row must carry about the model (the checkpoint step of the UNet).
    """
    from diffusion_regimes.score import EmpiricalScore, NoisePredictorScore

    if model == "exact":
        return EmpiricalScore(training.reshape(training.shape[0], -1).to(device),
                              max_chunk_bytes=spec.max_chunk_bytes), {}
    if model == "unet":
        if checkpoint is None:
            raise ConfigError("model 'unet' needs --checkpoint (the trained denoiser)")
        from diffusion_regimes.checkpoints import load_checkpoint, load_denoiser

        eps_model = load_denoiser(checkpoint, device=device)  # UNet in eval mode: eps_model(x, k) -> eps
        step = int(load_checkpoint(checkpoint)["step"])
        score = NoisePredictorScore(eps_model, image_shape=tuple(training.shape[1:]), device=device)
        return score, {"checkpoint_step": step}
    raise ConfigError(f"model {model!r} is not valid; choose one of ['exact', 'unet']")


def _file_digest(*paths: str | None) -> str:
    """SHA-256 over the bytes of ``paths`` (``None`` skipped): names a sweep's chunk folder."""
    digest = hashlib.sha256()
    for path in paths:
        if path is not None:
            digest.update(Path(path).read_bytes())
    return digest.hexdigest()


def _model_job(args: argparse.Namespace):
    """What a job measuring a model starts from: ``(spec, device, subset, theory t_S, f^e t_C)``."""
    from diffusion_regimes.regimes import RegimesSpec

    set_threads(args.threads)
    spec = from_json(RegimesSpec, args.spec, where="regimes")
    full = load_subset(args.subset)
    _, t_s_theory = _spectrum_of(args.spectrum, args.dataset)
    t_c_entropy = float(pd.read_csv(args.entropy)["t_c_entropy"].iloc[0])
    return spec, resolve_device(args.device), full, t_s_theory, t_c_entropy


def _regimes_clone(args: argparse.Namespace) -> None:
    from diffusion_regimes.classifier import load_classifier, probabilities
    from diffusion_regimes.regimes import cloning_experiment, plan_sweep

    spec, device, full, t_s_theory, t_c_entropy = _model_job(args)
    plan = plan_sweep(spec, dataset=args.dataset, model=args.model, n=args.n, subset_n=full.n,
                      t_s_theory=t_s_theory, t_c_entropy=t_c_entropy, base_seed=args.seed,
                      inputs_digest=_file_digest(args.subset, args.classifier, args.checkpoint),
                      pairs=args.pairs, steps=args.steps, variance=args.variance, sampler=args.sampler)
    subset = training_prefix(full, args.n, where=args.subset)  # one read of the file
    classifier, record = load_classifier(args.classifier, device=device)
    score, model_record = _score(args.model, training=subset.images, spec=spec, checkpoint=args.checkpoint,
                                 device=device)
    pairs, steps, variance, seed = plan.pairs, plan.steps, plan.variance, plan.seed
    result = cloning_experiment(score=score, training=subset.images, spec=spec, n_pairs=pairs, steps=steps,
                                variance=variance, sampler=plan.sampler, times=plan.times, seed=seed,
                                chunk_dir=Path(args.chunk_dir) / plan.chunk_key,
                                progress=True, labeller=lambda x: probabilities(classifier, x))
    config = {"regimes": spec_record(args.spec), "dataset": args.dataset, "n": args.n, "model": args.model,
              "sampler": plan.sampler, "pairs": pairs, "steps": steps, "variance": variance, **model_record}
    table = result.branch_table()
    table.insert(0, "classifier_accuracy", record["held_out_accuracy"])
    write_table(table, args.branches, config=config, seed=seed)
    write_table(pd.DataFrame({"t_c_hat": result.t_collapse, "memorisation_ratio": result.memorisation,
                              "confidence": result.confidence, "label": result.labels,
                              "nearest": result.neighbours[:, 0].numpy(),
                              "second_nearest": result.neighbours[:, 1].numpy()}),
                args.trajectories, config=config, seed=seed)
    summary = {**result.summary(), "t_s_theory": t_s_theory, "t_c_entropy": t_c_entropy,
               "classifier_accuracy": record["held_out_accuracy"],
               "real_confident_fraction": record.get("held_out_confident_fraction", float("nan")),
               **model_record}
    write_json(args.summary, summary, config=config, seed=seed)
    job_summary().update(model=args.model, sampler=plan.sampler, n=args.n, pairs=pairs,
                         t_S_fit=summary["t_s_fit"],
                         t_C_fit=summary["t_c_phi_c_fit"], t_C_hat_mean=summary["t_c_hat_mean"],
                         memorised_fraction=summary["memorised_fraction"],
                         confident_fraction=summary["confident_fraction"])
    save_torch([(k, t, rows.float()) for k, t, rows in result.strip], args.strip, config=config, seed=seed)
    save_torch({"samples": result.samples.float(), "neighbours": result.neighbours,
                "memorisation_ratio": torch.as_tensor(result.memorisation)}, args.samples, config=config,
               seed=seed)
    log.info("%s n=%d %s (%s): %d pairs x %d branch times, K = %d steps (%s variance), t_S fit %.3f "
             "[%.3f, %.3f], t_C fit %.3f [%.3f, %.3f], %.0f s", args.dataset, args.n, args.model,
             plan.sampler, pairs,
             result.branch_steps.size, steps, variance, summary["t_s_fit"], summary["t_s_fit_low"],
             summary["t_s_fit_high"], summary["t_c_phi_c_fit"], summary["t_c_phi_c_fit_low"],
             summary["t_c_phi_c_fit_high"], result.seconds)


def _regimes_entropy(args: argparse.Namespace) -> None:
    from diffusion_regimes.entropy import collapse_time, entropy_time_grid, excess_entropy
    from diffusion_regimes.regimes import RegimesSpec

    set_threads(args.threads)
    spec = from_json(RegimesSpec, args.spec, where="regimes")
    subset = load_subset(args.subset, args.n)
    seed = derived_seed(args.seed, "regimes-entropy", subset.dataset, args.n)
    times = entropy_time_grid(spec.entropy_grid, t_min=spec.entropy_t_min, t_max=spec.entropy_t_max,
                              n_times=spec.entropy_times, step_every=spec.entropy_step_every)
    # the distance matmuls follow the data's device: a GPU makes paper-size n' feasible (config/README.md)
    res = excess_entropy(subset.flat(torch.float64).to(resolve_device(args.device)), times=times,
                         n_prime=spec.n_prime,
                         generator=torch.Generator().manual_seed(seed),
                         max_chunk_bytes=spec.max_chunk_bytes, progress=True)
    tc = collapse_time(res)
    table = pd.DataFrame({"t": res.times, "f": res.f, "f_stderr": res.f_stderr, "alpha": res.alpha,
                          "f_over_alpha": res.f / res.alpha, "t_c_entropy": tc.time,
                          "t_c_entropy_low": tc.low, "t_c_entropy_high": tc.high, "n": res.n, "d": res.d,
                          "n_prime": res.n_prime})
    write_table(table, args.out, config={"regimes": spec_record(args.spec), "n": args.n}, seed=seed)
    job_summary().update(n=res.n, d=res.d, n_prime=res.n_prime, alpha=float(res.alpha),
                         t_C_entropy=float(tc.time))


def _spectrum_of(path: str, dataset: str) -> tuple[float, float]:
    """(Lambda, theory t_S) of ``dataset`` (paper convention: first channel) from its spectrum row (the
    ``spectrum`` job's JSON, what the workflow passes: adding a dataset then re-runs no other dataset's
    sweep) or from the gathered spectra table (CSV)."""
    if Path(path).suffix == ".json":
        row = json.loads(Path(path).read_text())
        if "lambda_first_channel" not in row:
            raise DataError(f"{path}: no 'lambda_first_channel' (keys: {sorted(row)})")
        lam = float(row["lambda_first_channel"])
    else:
        lam = _lambda_from_table(path, dataset)
    return lam, t_speciation(lam)


def _lambda_from_table(path: str, dataset: str) -> float:
    """Λ (first channel) of ``dataset`` in the gathered spectra table."""
    table = pd.read_csv(path)
    if "lambda_first_channel" not in table:
        raise DataError(f"{path}: no 'lambda_first_channel' column (columns: {list(table.columns)})")
    rows = table[table["dataset"] == dataset] if "dataset" in table else table
    if rows.empty:
        raise DataError(f"{path} has no row for dataset {dataset!r}")
    return float(rows.iloc[0]["lambda_first_channel"])


def _regimes_row(args: argparse.Namespace) -> None:
    from diffusion_regimes.regimes import RegimesSpec, regimes_row

    spec = from_json(RegimesSpec, args.spec, where="regimes")
    lam, _ = _spectrum_of(args.spectrum, args.dataset)
    summary = json.loads(Path(args.summary).read_text())
    row = regimes_row(dataset=args.dataset, model=args.model, summary=summary,
                      entropy=pd.read_csv(args.entropy), lam=lam, spec=spec, seed=args.seed)
    record = {"regimes": spec_record(args.spec), "dataset": args.dataset, "model": args.model}
    write_table(pd.DataFrame([row]), args.out, config=record, seed=args.seed)


def _regimes_table(args: argparse.Namespace) -> None:
    from diffusion_regimes.regimes import regimes_table

    write_table(regimes_table([pd.read_csv(p) for p in args.rows]), args.out, config={"rows": args.rows},
                seed=args.seed)


def _regimes_figures(args: argparse.Namespace) -> None:
    """Theory, the ideal (exact) and the learned (unet) model on the same axes for one dataset."""
    from diffusion_regimes.plots import save_figure
    from diffusion_regimes.plots.regimes import (
        MODEL_NAME,
        collapse_figure,
        neighbours_figure,
        phi_figure,
        strip_figure,
    )

    table = pd.read_csv(args.table)
    # the sweep figures show the paper's sampler; the others are compared in regimes-samplers-figure
    rows = table[(table["dataset"] == args.dataset) & (table.get("sampler", "ddpm") == "ddpm")]
    rows = rows.sort_values(["model", "n"])
    if rows.empty:
        raise DataError(f"{args.table} has no rows for dataset {args.dataset!r}")
    t_s = float(rows["t_s_theory"].iloc[0])
    # the sweep files, declared by the rule, aligned with --sweeps ("model/n")
    files = _sweep_files(args)

    def sweep(r, kind: str) -> Path:
        key = f"{r.model}/{int(r.n)}"
        if key not in files:
            raise DataError(f"{args.table} has a row for {key} of {args.dataset!r} but no sweep files were "
                            f"given for it (--sweeps {' '.join(files)})")
        return files[key][kind]

    from diffusion_regimes.schedule import DDPMSchedule

    curves = [(r.model, int(r.n), pd.read_csv(sweep(r, "branches")), rows.loc[i])
              for i, r in zip(rows.index, rows.itertuples(), strict=True)]
    cfg = {"dataset": args.dataset}
    k_s = DDPMSchedule().step_of_time(t_s)
    save_figure(phi_figure(curves, t_s_theory=t_s, k_s_theory=k_s), args.out_phi, config=cfg, seed=args.seed)

    # collapse and neighbours: every model at the largest n (the whole subset, where the UNet was trained)
    n_top = int(rows["n"].max())
    top = rows[rows["n"] == n_top]
    first = top.iloc[0]
    fig = collapse_figure(
        curves=[(r.model, n_top, pd.read_csv(sweep(r, "branches")),
                 pd.read_csv(sweep(r, "trajectories"))["t_c_hat"].to_numpy(), top.loc[i])
                for i, r in zip(top.index, top.itertuples(), strict=True)],
        entropy=pd.read_csv(args.entropy), t_c_entropy=float(first["t_c_entropy"]),
        title=f"{args.dataset}, n = {n_top}, α = log(n)/d = {first['alpha']:.4f}")
    save_figure(fig, args.out_collapse, config=cfg, seed=args.seed)

    subset = load_subset(args.subset, n_top)
    panels = [(MODEL_NAME.get(r.model, r.model), torch.load(sweep(r, "samples"), weights_only=True))
              for r in top.itertuples()]
    fig = neighbours_figure(panels, training=subset.images, to_pixels=subset.to_pixels)
    save_figure(fig, args.out_neighbours, config=cfg, seed=args.seed)
    strip_row = top[top["model"] == "exact"].iloc[0] if (top["model"] == "exact").any() else first
    strip = torch.load(sweep(strip_row, "strip"), weights_only=True)
    branch_time = float(pd.read_csv(sweep(strip_row, "branches"))["t"].max())
    save_figure(strip_figure(strip, to_pixels=subset.to_pixels, branch_time=branch_time), args.out_strip,
                config=cfg, seed=args.seed)


def _regimes_uturn(args: argparse.Namespace) -> None:
    """U-turns of one model on a training prefix, for every configured sampler: starts from training
    images (the first of the prefix) and, when the subset has images past the prefix, held-out ones."""
    from diffusion_regimes.classifier import load_classifier, probabilities
    from diffusion_regimes.regimes import sampler_integrator
    from diffusion_regimes.schedule import DDPMSchedule
    from diffusion_regimes.uturn import class_prior, uturn, uturn_table, uturn_times

    spec, device, full, t_s_theory, t_c_entropy = _model_job(args)
    subset = training_prefix(full, args.n, where=args.subset)
    classifier, _ = load_classifier(args.classifier, device=device)
    score, model_record = _score(args.model, training=subset.images, spec=spec, checkpoint=args.checkpoint,
                                 device=device)
    m = args.starts
    kinds = {"training": (subset.images[:m], subset.labels[:m], torch.arange(min(m, subset.n)))}
    if full.held_out_images is not None:  # the dataset's official test split
        held_images, held_labels = full.held_out_images[:m], full.held_out_labels[:m]
        kinds["held_out"] = (held_images, held_labels, torch.full((held_labels.numel(),), -1))
    elif full.n > args.n:  # images of the pair left out of the training prefix
        held = slice(args.n, min(args.n + m, full.n))
        kinds["held_out"] = (full.images[held], full.labels[held], torch.full((held.stop - held.start,), -1))
    times = uturn_times(t_min=spec.branch_t_min, t_max=spec.branch_t_max_factor * t_s_theory,
                        count=spec.uturn_times)
    prior = class_prior(subset.labels)
    seed = derived_seed(args.seed, "regimes-uturn", args.dataset, args.n, args.model)
    tables = []
    for sampler in args.samplers:
        integrator = sampler_integrator(sampler, steps=args.steps, schedule=DDPMSchedule(),
                                        variance=args.variance)
        for kind, (starts, labels, index) in kinds.items():
            generator = torch.Generator().manual_seed(derived_seed(seed, sampler, kind))
            result = uturn(starts.to(torch.float64), start_labels=labels, start_index=index, times=times,
                           training=subset.images, score=score, integrator=integrator,
                           labeller=lambda x: probabilities(classifier, x), generator=generator,
                           max_chunk_bytes=spec.max_chunk_bytes)
            tables.append(uturn_table(result, prior=prior, dataset=args.dataset, model=args.model,
                                      sampler=sampler, n=args.n, starts_from=kind, t_s_theory=t_s_theory,
                                      t_c_entropy=t_c_entropy, seed=seed))
            log.info("%s n=%d %s %s, %s starts (%d): class curve halfway at t = %.3f, return at t = %.3f",
                     args.dataset, args.n, args.model, sampler, kind, result.starts,
                     tables[-1]["t_class_mid"].iloc[0], tables[-1]["t_return_mid"].iloc[0])
    config = {"regimes": spec_record(args.spec), "dataset": args.dataset, "n": args.n, "model": args.model,
              "samplers": args.samplers, "steps": args.steps, "variance": args.variance, "starts": m,
              **model_record}
    write_table(pd.concat(tables, ignore_index=True), args.out, config=config, seed=seed)
    job_summary().update(model=args.model, n=args.n, samplers=list(args.samplers), kinds=list(kinds))


def _regimes_law(args: argparse.Namespace) -> None:
    from diffusion_regimes.law import law_cell
    from diffusion_regimes.regimes import RegimesSpec

    set_threads(args.threads)
    spec = from_json(RegimesSpec, args.spec, where="regimes")
    full = load_subset(args.subset)
    n = full.n if args.n == "all" else int(args.n)
    if not 2 <= n <= full.n:
        raise ConfigError(f"regimes.law_n_values: n = {n} is outside [2, {full.n}] for {args.subset}")
    seed = derived_seed(args.seed, "regimes-law", full.dataset, args.resolution, n)
    row = law_cell(full, side=args.resolution, n=n, spec=spec, seed=seed, device=resolve_device(args.device),
                   progress=True)
    write_table(pd.DataFrame([row]), args.out,
                config={"regimes": spec_record(args.spec), "resolution": args.resolution, "n": n}, seed=seed)
    job_summary().update(resolution=args.resolution, n=n, t_C_entropy=row["t_c_entropy"],
                         t_C_phi_c_fit=row["t_c_phi_c_fit"], t_C_hat_mean=row["t_c_hat_mean"])


def _regimes_gather(args: argparse.Namespace) -> None:
    """One table from per-job tables with the same columns (rows in the order given)."""
    frames = [pd.read_csv(p) for p in args.tables]
    columns = list(frames[0].columns)
    for path, frame in zip(args.tables, frames, strict=True):
        if list(frame.columns) != columns:
            raise DataError(f"{path} has the columns {list(frame.columns)}, not {columns} like "
                            f"{args.tables[0]}; it was written by another version: re-run the job that "
                            "writes it")
    write_table(pd.concat(frames, ignore_index=True), args.out, config={"tables": args.tables},
                seed=args.seed)


def _rows_of(path: str, dataset: str) -> pd.DataFrame:
    """The rows of ``dataset`` in the table at ``path`` (an error when there are none)."""
    table = pd.read_csv(path)
    rows = table[table["dataset"] == dataset]
    if rows.empty:
        raise DataError(f"{path} has no rows for dataset {dataset!r}")
    return rows


def _regimes_extra_figure(args: argparse.Namespace) -> None:
    """One figure beyond the paper (``args.figure``: law, uturn or samplers) of one dataset."""
    from diffusion_regimes.plots import save_figure
    from diffusion_regimes.plots.regimes import law_figure, samplers_figure, uturn_figure

    rows = _rows_of(args.table, args.dataset)
    if args.figure == "samplers":
        fig = samplers_figure(rows, _rows_of(args.uturn, args.dataset), title=args.dataset)
    else:
        fig = {"law": law_figure, "uturn": uturn_figure}[args.figure](rows, title=args.dataset)
    save_figure(fig, args.out, config={"dataset": args.dataset}, seed=args.seed)


SWEEP_FILES = ("branches", "trajectories", "samples", "strip")


def _sweep_files(args: argparse.Namespace) -> dict[str, dict[str, str]]:
    """``{"model/n": {kind: path}}`` from the aligned lists ``--sweeps``, ``--branches``, ..."""
    lists = {kind: getattr(args, kind) for kind in SWEEP_FILES}
    for kind, paths in lists.items():
        if len(paths) != len(args.sweeps):
            raise ConfigError(f"regimes-figures: {len(args.sweeps)} --sweeps but {len(paths)} --{kind} "
                              "files; give one file of each kind per sweep, in the same order")
    return {key: {kind: lists[kind][i] for kind in SWEEP_FILES} for i, key in enumerate(args.sweeps)}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("regimes-clone", help="shared-trunk cloning sweep of one model on a subset prefix")
    add_spec_arguments(p)
    p.add_argument("--dataset", required=True)
    p.add_argument("--subset", required=True)
    p.add_argument("--classifier", required=True)
    p.add_argument("--spectrum", "--spectra", dest="spectrum", required=True,
                   help="spectrum row .json of the dataset, or the spectra table .csv (theory t_S)")
    p.add_argument("--entropy", required=True, help="f^e table of this prefix (its t_C places branch times)")
    p.add_argument("--n", type=int, required=True, help="training-set size (prefix of the subset)")
    p.add_argument("--model", default="exact", choices=("exact", "unet"))
    p.add_argument("--checkpoint", default=None, help="denoiser checkpoint (model unet)")
    p.add_argument("--pairs", type=int, default=None, help="clone pairs per branch time")
    p.add_argument("--steps", type=int, default=None, help="sampler steps K (default: the spec's)")
    p.add_argument("--variance", default=None, choices=VARIANCES, help="sampler noise variance rule")
    p.add_argument("--sampler", default="ddpm", choices=SAMPLERS, help="backward dynamics (default: ddpm)")
    p.add_argument("--chunk-dir", required=True,
                   help="folder of completed chunks of pairs (a re-run resumes from them)")
    for name in ("branches", "trajectories", "summary", "strip", "samples"):
        p.add_argument(f"--{name}", required=True)
    p.set_defaults(func=_regimes_clone, uses_network=True)

    p = sub.add_parser("regimes-entropy", help="excess entropy f^e(t)/alpha of a subset prefix")
    add_spec_arguments(p)
    p.add_argument("--subset", required=True)
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(func=_regimes_entropy, gpu_capable=True)

    p = sub.add_parser("regimes-row", help="one row of the regimes table")
    p.add_argument("--spec", required=True, help="JSON of the regimes keys it reads (quality gates)")
    p.add_argument("--summary", required=True)
    p.add_argument("--entropy", required=True)
    p.add_argument("--spectrum", "--spectra", dest="spectrum", required=True,
                   help="spectrum row .json of the dataset, or the spectra table .csv")
    p.add_argument("--dataset", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    p.set_defaults(func=_regimes_row)

    p = sub.add_parser("regimes-table", help="gather regimes rows into one table")
    p.add_argument("--rows", nargs="+", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    p.set_defaults(func=_regimes_table)

    p = sub.add_parser("regimes-figures", help="phi, phi_C / t_C and strip figures of one dataset")
    p.add_argument("--table", required=True)
    p.add_argument("--dataset", required=True)
    p.add_argument("--sweeps", nargs="+", required=True, help="model/n of each sweep, e.g. exact/1000")
    for kind in SWEEP_FILES:
        p.add_argument(f"--{kind}", nargs="+", required=True, help=f"{kind} file of each sweep (same order)")
    p.add_argument("--entropy", required=True, help="f^e table at the largest n")
    p.add_argument("--subset", required=True)
    p.add_argument("--out-phi", required=True)
    p.add_argument("--out-collapse", required=True)
    p.add_argument("--out-strip", required=True)
    p.add_argument("--out-neighbours", required=True, help="samples | nearest | 2nd nearest figure")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_regimes_figures)

    p = sub.add_parser("regimes-uturn", help="U-turn curves of one model on a prefix, for every sampler")
    add_spec_arguments(p)
    p.add_argument("--dataset", required=True)
    p.add_argument("--subset", required=True)
    p.add_argument("--classifier", required=True)
    p.add_argument("--spectrum", required=True, help="spectrum row .json of the dataset (theory t_S)")
    p.add_argument("--entropy", required=True, help="f^e table of this prefix")
    p.add_argument("--n", type=int, required=True, help="training-set size (prefix of the subset)")
    p.add_argument("--model", default="exact", choices=("exact", "unet"))
    p.add_argument("--checkpoint", default=None, help="denoiser checkpoint (model unet)")
    p.add_argument("--samplers", nargs="+", choices=SAMPLERS, default=["ddpm"])
    p.add_argument("--starts", type=int, required=True, help="start images of each kind")
    p.add_argument("--steps", type=int, required=True, help="sampler steps K")
    p.add_argument("--variance", default="large", choices=VARIANCES, help="noise rule of the ddpm steps")
    p.add_argument("--out", required=True)
    p.set_defaults(func=_regimes_uturn, uses_network=True)

    p = sub.add_parser("regimes-law", help="one cell of the collapse law on real data")
    add_spec_arguments(p)
    p.add_argument("--subset", required=True)
    p.add_argument("--resolution", type=int, required=True, help="side of the pooled images")
    p.add_argument("--n", required=True, help="training-set size, or 'all'")
    p.add_argument("--out", required=True)
    p.set_defaults(func=_regimes_law, gpu_capable=True)

    p = sub.add_parser("regimes-gather", help="concatenate per-job tables with the same columns")
    p.add_argument("--tables", nargs="+", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    p.set_defaults(func=_regimes_gather)

    figures = (("law", "collapse law on real data"), ("uturn", "U-turn curves"),
               ("samplers", "sampler comparison"))
    for figure, help_text in figures:
        name = f"regimes-{figure}-figure"
        p = sub.add_parser(name, help=f"figure: {help_text} of one dataset")
        p.add_argument("--table", required=True)
        p.add_argument("--dataset", required=True)
        if name == "regimes-samplers-figure":
            p.add_argument("--uturn", required=True, help="the U-turn table")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--out", required=True)
        p.set_defaults(func=_regimes_extra_figure, figure=figure)
