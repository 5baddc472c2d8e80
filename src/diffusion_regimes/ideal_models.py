"""Which ideal model does a trained UNet follow?  The exact score against the local score machines, sample
by sample (docs/science.md section 7).

The stage compares four kinds of score from the *same* initial noises, with the deterministic sampler (the
probability-flow ODE with Heun steps, :class:`sampler.HeunODE`, on K steps of the DDPM grid, by default the
quadratic respacing that is dense at small t: with K = 20 uniform steps the last Heun step jumps from
t = 0.017 to 5e-5 and the samples of a briefly trained network keep visible noise, which alone pulled every
machine's median r^2 below 0.05 on MNIST 1/8):

* each trained network (``unet_<preset>``: the default architecture and the ``local`` preset without
  GroupNorm and attention, trained with the same recipe);
* the exact empirical score (:class:`score.EmpiricalScore`, the paper's ideal model);
* the local score machine LS and the equivariant local score machine ELS (:mod:`local_score`), with a
  patch side P(t) calibrated against each network.

Calibration.  From ``calibration_noises`` noises that are *not* among the compared ones, the network's own
ODE trajectories give held-out states ``x_t`` at ``calibration_times`` grid times; there the network's
denoiser ``D(x_t) = e^t (x_t + Delta_t F(x_t, t))`` (the posterior-mean prediction of the clean image) is
compared with each machine's for every candidate side in ``patch_sizes``, and P(t) is the side with the
largest median pixelwise r^2.  Between calibration times P(t) is that of the nearest one (in log t).

Measures.  Per noise, the pixelwise coefficient of determination of a model's sample against the
network's sample, ``r^2 = 1 - sum (u - m)^2 / sum (u - mean u)^2`` (u: network, m: model; 1 = same image,
0 = no better than the network's mean grey level, negative = worse); its median over the noises with a
percentile bootstrap interval.  Along the trajectories, the same r^2 between the denoiser outputs at each
grid time (each model on its own trajectory from the same noise).  The memorised fraction of every model's
samples (nearest / second-nearest training distance below 1/3, :data:`measures.MEMORISED_RATIO`).  An
ELS bank subsampled to fit a small machine is checked by repeating its comparison at other bank sizes.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from diffusion_regimes.errors import ConfigError
from diffusion_regimes.local_score import EquivariantLocalScore, LocalScore, PatchSchedule
from diffusion_regimes.measures import MEMORISED_RATIO, memorisation
from diffusion_regimes.sampler import SPACINGS, DDPMAncestral, HeunODE, Score
from diffusion_regimes.schedule import DDPMSchedule, delta_t
from diffusion_regimes.score import EmpiricalScore
from diffusion_regimes.seeds import derived_seed

MACHINES = ("exact", "ls", "els")
"""The closed-form models compared with each network."""

NETWORK_PREFIX = "unet_"

QUARTILES = torch.tensor([0.25, 0.5, 0.75], dtype=torch.float64)
"""A network's model name is ``unet_<preset>``."""


@dataclass(frozen=True)
class IdealModelsSpec:
    """The ``ideal_models:`` config section (config/README.md, "Ideal models")."""

    datasets: tuple[str, ...] = ()  # prepared subsets measured (empty: the stage is off)
    networks: tuple[str, ...] = ("digits", "local")  # UNet presets, each trained with the `train` recipe
    reference: str = "digits"  # the network the bank-size study and the figure's first rows use
    train_steps: int | None = None  # optimiser steps of the stage's networks (None: train.steps)
    n_noises: int = 100  # initial noises compared (the issue asks for >= 100)
    sampler_steps: int = 20  # Heun steps on the respaced DDPM grid (2 score evaluations each, 1 for the last)
    # which DDPM steps the ODE keeps: "quadratic" (dense at small t, where the images are drawn) or "uniform"
    sampler_spacing: str = "quadratic"
    patch_sizes: tuple[int, ...] = (3, 5, 7, 9, 13)  # candidate sides of P(t), odd
    calibration_noises: int = 16  # held-out trajectories of each network for the calibration
    calibration_times: int = 6  # grid times of the calibration, log-spaced in [t_min, t_max]
    calibration_t_min: float = 0.02
    calibration_t_max: float = 2.0
    els_bank_size: int | None = 20000  # ELS patches drawn from the n H W of the training set (None: all)
    bank_sizes: tuple[int, ...] = ()  # further ELS bank sizes, compared on bank_study_noises noises
    bank_study_noises: int = 32
    grid_noises: int = 8  # noises shown in the figure's sample grid
    n_boot: int = 1000  # bootstrap resamples of each median
    max_chunk_bytes: int = 64 * 2**20
    # cloning sweeps of the machines (the regimes stage's protocol on the DDPM sampler; 0 pairs = off)
    regimes_models: tuple[str, ...] = ("ls", "els")
    regimes_pairs: int = 0
    regimes_steps: int = 50

    def __post_init__(self) -> None:
        if self.n_noises < 2 or self.calibration_noises < 1 or self.sampler_steps < 2:
            raise ConfigError("ideal_models: need n_noises >= 2, calibration_noises >= 1 and "
                              "sampler_steps >= 2")
        if not self.patch_sizes or any(p < 1 or p % 2 == 0 for p in self.patch_sizes):
            raise ConfigError(f"ideal_models.patch_sizes must be odd sides >= 1, "
                              f"got {list(self.patch_sizes)}")
        if not 0 < self.calibration_t_min < self.calibration_t_max:
            raise ConfigError("ideal_models: need 0 < calibration_t_min < calibration_t_max")
        if self.sampler_spacing not in SPACINGS:
            raise ConfigError(f"ideal_models.sampler_spacing {self.sampler_spacing!r} is not valid; "
                              f"choose one of {list(SPACINGS)}")
        if self.networks and self.reference not in self.networks:
            raise ConfigError(f"ideal_models.reference {self.reference!r} must be one of networks "
                              f"{list(self.networks)}")
        if any(m < 1 for m in self.bank_sizes) or (self.els_bank_size is not None and self.els_bank_size < 1):
            raise ConfigError("ideal_models: ELS bank sizes must be >= 1 (or els_bank_size null for all)")


def r_squared(target: torch.Tensor, prediction: torch.Tensor) -> torch.Tensor:
    """Pixelwise coefficient of determination per sample, ``(N, ...)`` x 2 -> ``(N,)`` float64."""
    u = target.reshape(target.shape[0], -1).to(torch.float64)
    m = prediction.reshape(prediction.shape[0], -1).to(torch.float64)
    residual = ((u - m) ** 2).sum(dim=1)
    spread = ((u - u.mean(dim=1, keepdim=True)) ** 2).sum(dim=1)
    return 1.0 - residual / spread


def median_interval(values: torch.Tensor, *, n_boot: int, generator: torch.Generator,
                    level: float = 0.95) -> tuple[float, float, float]:
    """Median of ``values`` ``(N,)`` and its percentile-bootstrap interval at ``level``."""
    v = values.to(torch.float64)
    med = float(v.median())
    if v.numel() < 2 or n_boot < 1:
        return med, math.nan, math.nan
    idx = torch.randint(0, v.numel(), (n_boot, v.numel()), generator=generator)
    boot = v[idx].median(dim=1).values
    lo, hi = torch.quantile(boot, torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=torch.float64))
    return med, float(lo), float(hi)


def denoise(score: Score, x: torch.Tensor, t: float) -> torch.Tensor:
    """The posterior-mean prediction of the clean image, ``e^t (x + Delta_t F(x, t))``, float64."""
    x64 = x.to(torch.float64)
    return math.exp(t) * (x64 + float(delta_t(t)) * score(x, t).to(torch.float64))


class _FirstCall:
    """Wraps a score; records ``(t, x, F)`` of the first call after :meth:`arm` (a Heun step's evaluation at
    the state itself, before its predictor)."""

    def __init__(self, score: Score, *, keep_states: bool = False) -> None:
        self.score = score
        self.armed = False
        self.keep_states = keep_states
        self.denoised: list[torch.Tensor] = []
        self.states: list[torch.Tensor] = []

    def arm(self) -> None:
        self.armed = True

    def __call__(self, x: torch.Tensor, t: float) -> torch.Tensor:
        force = self.score(x, t)
        if self.armed:
            self.armed = False
            d = math.exp(t) * (x.to(torch.float64) + float(delta_t(t)) * force.to(torch.float64))
            self.denoised.append(d.to(torch.float32))
            if self.keep_states:
                self.states.append(x.clone())
        return force


@dataclass(frozen=True)
class Trajectories:
    """ODE trajectories of one model from a batch of noises: ``samples`` ``(N, C, H, W)`` at t = 0 and the
    denoiser output at every grid time but the last, ``denoised`` ``(S, N, C, H, W)`` (float32); with
    ``keep_states`` the states there too (``states[s]`` at ``times[s]``)."""

    samples: torch.Tensor
    denoised: torch.Tensor
    times: torch.Tensor  # (S,)
    seconds: float
    states: list[torch.Tensor] = field(default_factory=list)


def ode_trajectories(score: Score, noises: torch.Tensor, *, integrator: HeunODE, keep_states: bool = False,
                     progress: bool = False, desc: str = "ODE") -> Trajectories:
    """Integrate the probability-flow ODE from ``noises`` (state at ``integrator.times[0]``) to t = 0,
    recording the denoiser output at each grid time (no extra score evaluation)."""
    recorder = _FirstCall(score, keep_states=keep_states)
    x = noises
    steps = range(integrator.n_steps)
    if progress:
        from diffusion_regimes.progress import progress as bar

        steps = bar(steps, desc=desc, unit="step", leave=False)
    start = time.perf_counter()
    for i in steps:
        recorder.arm()
        x = integrator.step(x, i, recorder, None)  # deterministic: no noise
    return Trajectories(samples=x.to(torch.float64), denoised=torch.stack(recorder.denoised),
                        times=integrator.times[:-1].clone(), seconds=time.perf_counter() - start,
                        states=recorder.states)


def calibration_grid(spec: IdealModelsSpec, integrator: HeunODE) -> list[int]:
    """Grid indices of the calibration times (log-spaced in [t_min, t_max], snapped, unique)."""
    wanted = np.geomspace(spec.calibration_t_min, spec.calibration_t_max, spec.calibration_times)
    grid = integrator.times[:-1].numpy()
    return sorted({int(np.argmin(np.abs(grid - t))) for t in wanted})


Machine = LocalScore | EquivariantLocalScore


def calibrate_patch(machine: Machine, *, network: Trajectories, states: Mapping[int, torch.Tensor],
                    integrator: HeunODE, sizes: Sequence[int]) -> tuple[PatchSchedule, pd.DataFrame]:
    """P(t) maximising the median r^2 between the machine's and the network's denoiser outputs.

    ``states``: grid index -> the network's held-out states ``(M, C, H, W)`` there; ``network``: those
    trajectories (their ``denoised`` rows give the network's outputs).  Returns the schedule and the table
    ``(t, P, r2_median, r2_q25, r2_q75, chosen)`` of every candidate.
    """
    rows, chosen_t, chosen_p = [], [], []
    for i in sorted(states, key=lambda j: float(integrator.times[j])):
        t = float(integrator.times[i])
        target = network.denoised[i].to(torch.float64)
        scores = {}
        for p in sizes:
            r2 = r_squared(target, machine.denoise(states[i], t, size=p))
            scores[p] = r2
            q25, q75 = torch.quantile(r2, torch.tensor([0.25, 0.75], dtype=torch.float64)).tolist()
            rows.append({"t": t, "P": int(p), "r2_median": float(r2.median()), "r2_q25": q25, "r2_q75": q75})
        best = max(sizes, key=lambda p: float(scores[p].median()))
        chosen_t.append(t)
        chosen_p.append(int(best))
    table = pd.DataFrame(rows)
    table["chosen"] = table["P"] == table["t"].map(dict(zip(chosen_t, chosen_p, strict=True)))
    return PatchSchedule(times=tuple(chosen_t), sizes=tuple(chosen_p)), table


@dataclass
class IdealModelsResult:
    """Tables of one dataset: ``per_sample`` (network, model, noise, r2, memorisation_ratio),
    ``trajectory`` (network, model, step, t, r2 quartiles of the denoiser outputs), ``calibration``
    (network, model, t, P, r2 quartiles, chosen), ``summary`` (one row per network and model),
    ``bank_study`` (ELS r^2 against the bank size) and ``grid``: model name -> samples of the first
    ``grid_noises`` noises."""

    per_sample: pd.DataFrame
    trajectory: pd.DataFrame
    calibration: pd.DataFrame
    summary: pd.DataFrame
    bank_study: pd.DataFrame
    grid: dict[str, torch.Tensor] = field(default_factory=dict)


def compare_ideal_models(
    *,
    training: torch.Tensor,
    networks: Mapping[str, Score],
    spec: IdealModelsSpec,
    seed: int,
    schedule: DDPMSchedule | None = None,
    progress: bool = False,
    log: Callable[[str], None] = lambda message: None,
) -> IdealModelsResult:
    """The same-noise comparison of the exact score, LS and ELS with every network (module docstring).

    ``training``: the networks' training set ``(n, C, H, W)`` (centred pixels); ``networks``: preset name ->
    its score (:class:`score.NoisePredictorScore`).  The compared noises are drawn from
    ``derived_seed(seed, "ideal-noise")``, the calibration noises from ``derived_seed(seed,
    "ideal-calibration")``; the ELS bank from ``derived_seed(seed, "ideal-bank")``.
    """
    if not networks:
        raise ConfigError("ideal_models: no network to compare with (ideal_models.networks is empty)")
    schedule = schedule or DDPMSchedule()
    integrator = HeunODE(DDPMAncestral.respaced(spec.sampler_steps, schedule=schedule,
                                                spacing=spec.sampler_spacing).times)
    shape = tuple(training.shape[1:])
    data = training.to(torch.float64)
    flat = data.reshape(data.shape[0], -1)
    noises = torch.randn(spec.n_noises, *shape, dtype=torch.float64,
                         generator=torch.Generator().manual_seed(derived_seed(seed, "ideal-noise")))
    held = torch.randn(spec.calibration_noises, *shape, dtype=torch.float64,
                       generator=torch.Generator().manual_seed(derived_seed(seed, "ideal-calibration")))
    boot = torch.Generator().manual_seed(derived_seed(seed, "ideal-bootstrap"))
    bank_seed = derived_seed(seed, "ideal-bank")
    cal_idx = calibration_grid(spec, integrator)

    runs: dict[str, Trajectories] = {}
    for name, score in networks.items():
        runs[NETWORK_PREFIX + name] = ode_trajectories(score, noises, integrator=integrator,
                                                       progress=progress, desc=f"ODE unet {name}")
        log(f"network {name}: {spec.n_noises} trajectories in {runs[NETWORK_PREFIX + name].seconds:.0f} s")
    runs["exact"] = ode_trajectories(EmpiricalScore(flat, max_chunk_bytes=spec.max_chunk_bytes), noises,
                                     integrator=integrator, progress=progress, desc="ODE exact")
    log(f"exact score: {runs['exact'].seconds:.0f} s")

    calibrations, schedules = [], {}
    machine_runs: dict[tuple[str, tuple], Trajectories] = {}  # (kind, P schedule) -> trajectories (shared)
    per_sample, trajectory, summary = [], [], []

    def machine(kind: str, patch: PatchSchedule | int, bank: int | None = spec.els_bank_size) -> Machine:
        if kind == "ls":
            return LocalScore(data, patch=patch, max_chunk_bytes=spec.max_chunk_bytes)
        return EquivariantLocalScore(data, patch=patch, bank_size=bank, seed=bank_seed,
                                     max_chunk_bytes=spec.max_chunk_bytes)

    els_probe = machine("els", 1)
    for name, score in networks.items():
        held_run = ode_trajectories(score, held, integrator=integrator, keep_states=True,
                                    desc=f"held-out {name}")
        states = {i: held_run.states[i] for i in cal_idx}
        for kind in ("ls", "els"):
            probe = machine(kind, 1) if kind == "ls" else els_probe
            started = time.perf_counter()
            sched, table = calibrate_patch(probe, network=held_run, states=states, integrator=integrator,
                                           sizes=spec.patch_sizes)
            table.insert(0, "model", kind)
            table.insert(0, "network", name)
            calibrations.append(table)
            schedules[(name, kind)] = sched
            log(f"calibrated P(t) of {kind} on {name}: " + ", ".join(
                f"t={t:.3g}: {p}" for t, p in zip(sched.times, sched.sizes, strict=True))
                + f" ({time.perf_counter() - started:.0f} s)")
            key = (kind, sched.sizes, sched.times)
            if key not in machine_runs:
                m = els_probe.with_patch(sched) if kind == "els" else machine(kind, sched)
                machine_runs[key] = ode_trajectories(m, noises, integrator=integrator, progress=progress,
                                                     desc=f"ODE {kind} ({name} P(t))")
                log(f"{kind} with the P(t) of {name}: {machine_runs[key].seconds:.0f} s")

    memo = {}

    def memorised(model_key: str, run: Trajectories) -> torch.Tensor:
        if model_key not in memo:
            memo[model_key] = memorisation(run.samples.reshape(run.samples.shape[0], -1), flat,
                                           max_chunk_bytes=spec.max_chunk_bytes)[0]
        return memo[model_key]

    for name in networks:
        ref = runs[NETWORK_PREFIX + name]
        compared: dict[str, tuple[str, Trajectories]] = {
            model: (model, run) for model, run in runs.items() if model != NETWORK_PREFIX + name}
        for kind in ("ls", "els"):
            sched = schedules[(name, kind)]
            key = (kind, sched.sizes, sched.times)
            compared[kind] = (str(key), machine_runs[key])
        for model, (memo_key, run) in compared.items():
            r2 = r_squared(ref.samples, run.samples)
            ratio = memorised(memo_key, run)
            for j in range(r2.numel()):
                per_sample.append({"network": name, "model": model, "noise": j, "r2": float(r2[j]),
                                   "memorisation_ratio": float(ratio[j])})
            med, lo, hi = median_interval(r2, n_boot=spec.n_boot, generator=boot)
            sched = schedules.get((name, model))
            summary.append({"network": name, "model": model, "n_noises": int(r2.numel()), "r2_median": med,
                            "r2_low": lo, "r2_high": hi,
                            "memorised_fraction": float((ratio < MEMORISED_RATIO).double().mean()),
                            "p_min": min(sched.sizes) if sched else math.nan,
                            "p_max": max(sched.sizes) if sched else math.nan,
                            "bank_size": (els_probe.bank_patches if model == "els" else math.nan),
                            "sampler_steps": spec.sampler_steps, "seconds": run.seconds})
            for s in range(run.denoised.shape[0]):
                r2_t = r_squared(ref.denoised[s], run.denoised[s])
                q25, q50, q75 = torch.quantile(r2_t, QUARTILES).tolist()
                trajectory.append({"network": name, "model": model, "step": s, "t": float(run.times[s]),
                                   "r2_median": q50, "r2_q25": q25, "r2_q75": q75})
        # the network's own memorised fraction (r^2 = 1 against itself)
        ratio = memorised(NETWORK_PREFIX + name, ref)
        summary.append({"network": name, "model": NETWORK_PREFIX + name, "n_noises": spec.n_noises,
                        "r2_median": 1.0, "r2_low": 1.0, "r2_high": 1.0,
                        "memorised_fraction": float((ratio < MEMORISED_RATIO).double().mean()),
                        "p_min": math.nan, "p_max": math.nan, "bank_size": math.nan,
                        "sampler_steps": spec.sampler_steps, "seconds": ref.seconds})

    bank_rows = []
    if spec.bank_sizes:
        ref_name = spec.reference
        ref = runs[NETWORK_PREFIX + ref_name]
        sched = schedules[(ref_name, "els")]
        few = noises[: spec.bank_study_noises]
        main_run = machine_runs[("els", sched.sizes, sched.times)]
        for m in sorted(set(spec.bank_sizes) | {els_probe.bank_patches}):
            if m == els_probe.bank_patches:  # the same bank (same size, same seed): its first trajectories
                samples, seconds = main_run.samples[: few.shape[0]], math.nan
            else:
                run = ode_trajectories(machine("els", sched, bank=m), few, integrator=integrator,
                                       progress=progress, desc=f"ODE els bank {m}")
                samples, seconds = run.samples, run.seconds
            r2 = r_squared(ref.samples[: few.shape[0]], samples)
            med, lo, hi = median_interval(r2, n_boot=spec.n_boot, generator=boot)
            bank_rows.append({"network": ref_name, "bank_size": m, "n_noises": int(r2.numel()),
                              "r2_median": med, "r2_low": lo, "r2_high": hi, "seconds": seconds})
            log(f"ELS bank {m}: median r2 {med:.3f} [{lo:.3f}, {hi:.3f}] on {few.shape[0]} noises")

    grid = {model: run.samples[: spec.grid_noises].to(torch.float32) for model, run in runs.items()}
    for name in networks:
        for kind in ("ls", "els"):
            sched = schedules[(name, kind)]
            run = machine_runs[(kind, sched.sizes, sched.times)]
            grid[f"{kind}:{name}"] = run.samples[: spec.grid_noises].to(torch.float32)
    return IdealModelsResult(per_sample=pd.DataFrame(per_sample), trajectory=pd.DataFrame(trajectory),
                             calibration=pd.concat(calibrations, ignore_index=True),
                             summary=pd.DataFrame(summary), bank_study=pd.DataFrame(bank_rows), grid=grid)


# ---------------------------------------------------------------------------- from files to files
OUTPUTS = ("summary", "per_sample", "trajectory", "calibration", "bank_study", "grid")
"""The files of one dataset's comparison (results/ideal_models/{dataset}/): five tables and the grid."""

TABLE_COLUMNS = ("dataset", "n", "network", "model", "n_noises", "r2_median", "r2_low", "r2_high", "t_s_fit",
                 "t_s_fit_low", "t_s_fit_high", "memorised_fraction", "memorised_fraction_ddpm", "p_min",
                 "p_max", "bank_size", "sampler_steps", "checkpoint_step")
"""Columns of results/tables/ideal_models.csv.  ``memorised_fraction``: of the ODE samples;
``t_s_fit`` and ``memorised_fraction_ddpm``: from the machine's cloning sweep (DDPM sampler) where one ran
(empty otherwise; the exact score's and the UNet's are in results/tables/regimes.csv)."""


def run_comparison(*, subset_path: str | Path, checkpoints: Mapping[str, str | Path], spec: IdealModelsSpec,
                   seed: int, device: torch.device, outputs: Mapping[str, str | Path],
                   progress: bool = True, log: Callable[[str], None] = lambda message: None) -> pd.DataFrame:
    """Load a prepared subset and the networks' checkpoints, run :func:`compare_ideal_models`, and write
    :data:`OUTPUTS` (tables with provenance sidecars, the grid as a torch file).  Returns the summary."""
    from diffusion_regimes.checkpoints import load_checkpoint, load_denoiser
    from diffusion_regimes.cli.common import load_subset
    from diffusion_regimes.config import to_dict
    from diffusion_regimes.provenance import save_torch, write_table
    from diffusion_regimes.score import NoisePredictorScore

    missing = [key for key in OUTPUTS if key not in outputs]
    if missing:
        raise ConfigError(f"ideal_models: no output path for {missing}")
    subset = load_subset(subset_path)
    shape = tuple(subset.images.shape[1:])
    networks, steps = {}, {}
    for name in spec.networks:
        if name not in checkpoints:
            raise ConfigError(f"ideal_models.networks lists {name!r} but no checkpoint was given for it")
        model = load_denoiser(checkpoints[name], device=device)
        steps[name] = int(load_checkpoint(checkpoints[name])["step"])
        networks[name] = NoisePredictorScore(model, image_shape=shape, device=device)
    job_seed = derived_seed(seed, "ideal-models", subset.dataset)
    result = compare_ideal_models(training=subset.images.to(device), networks=networks, spec=spec,
                                  seed=job_seed, progress=progress, log=log)
    record = {"ideal_models": to_dict(spec), "dataset": subset.dataset, "n": subset.n,
              "checkpoints": {k: str(v) for k, v in checkpoints.items()}, "checkpoint_steps": steps}
    summary = result.summary.copy()
    summary.insert(0, "n", subset.n)
    summary.insert(0, "dataset", subset.dataset)
    summary["checkpoint_step"] = summary["network"].map(steps)
    for key, frame in (("summary", summary), ("per_sample", result.per_sample),
                       ("trajectory", result.trajectory), ("calibration", result.calibration),
                       ("bank_study", result.bank_study)):
        write_table(frame, outputs[key], config=record, seed=job_seed)
    save_torch({"grid": result.grid, "channel_means": subset.channel_means}, outputs["grid"], config=record,
               seed=job_seed)
    return summary


def ideal_models_table(summaries: Sequence[str | Path], sweeps: Sequence[str | Path] = ()) -> pd.DataFrame:
    """results/tables/ideal_models.csv from the per-dataset summaries and, where given, the summaries of the
    machines' cloning sweeps (:func:`machine_regimes`: t_S fit and the memorised fraction of DDPM samples)."""
    import json

    frame = pd.concat([pd.read_csv(path) for path in summaries], ignore_index=True)
    for col in ("t_s_fit", "t_s_fit_low", "t_s_fit_high"):
        frame[col] = math.nan
    frame["memorised_fraction_ddpm"] = math.nan
    for path in sweeps or ():
        fit = json.loads(Path(path).read_text())
        where = (frame["dataset"] == fit["dataset"]) & (frame["model"] == fit["model"])
        for col in ("t_s_fit", "t_s_fit_low", "t_s_fit_high"):
            frame.loc[where, col] = fit[col]
        frame.loc[where, "memorised_fraction_ddpm"] = fit["memorised_fraction"]
    return frame[list(TABLE_COLUMNS)].sort_values(["dataset", "network", "model"]).reset_index(drop=True)


# ---------------------------------------------------------------------------- regimes of the machines
def calibrated_schedule(calibration: pd.DataFrame, *, network: str, model: str) -> PatchSchedule:
    """The P(t) chosen for ``model`` (ls or els) against ``network`` in a calibration table."""
    rows = calibration[(calibration["network"] == network) & (calibration["model"] == model)
                       & calibration["chosen"].astype(bool)].sort_values("t")
    if rows.empty:
        raise ConfigError(f"the calibration table has no chosen P(t) of {model!r} against {network!r}")
    return PatchSchedule(times=tuple(rows["t"]), sizes=tuple(int(p) for p in rows["P"]))


def machine_regimes(*, subset_path: str | Path, calibration_path: str | Path, classifier_path: str | Path,
                    spectrum_path: str | Path, entropy_path: str | Path, model: str, spec: IdealModelsSpec,
                    regimes_spec, seed: int, device: torch.device, summary_path: str | Path,
                    branches_path: str | Path, chunk_dir: str | Path | None = None,
                    progress: bool = True) -> dict:
    """The cloning sweep of the regimes stage (:func:`regimes.cloning_experiment`: DDPM sampler, phi(t),
    t_S fit, phi_C, t̂_C, memorised fraction) run with LS or ELS (``model``) at the P(t) calibrated against
    ``spec.reference``, on the whole subset; writes its summary (JSON) and branch table (CSV)."""
    import json

    from diffusion_regimes.classifier import load_classifier, probabilities
    from diffusion_regimes.cli.common import load_subset
    from diffusion_regimes.config import to_dict
    from diffusion_regimes.provenance import write_json, write_table
    from diffusion_regimes.regimes import cloning_experiment

    if model not in ("ls", "els"):
        raise ConfigError(f"ideal_models.regimes_models: {model!r} is not valid; choose ls or els")
    subset = load_subset(subset_path)
    sched = calibrated_schedule(pd.read_csv(calibration_path), network=spec.reference, model=model)
    data = subset.images.to(device=device, dtype=torch.float64)
    bank_seed = derived_seed(derived_seed(seed, "ideal-models", subset.dataset), "ideal-bank")
    score = (LocalScore(data, patch=sched, max_chunk_bytes=spec.max_chunk_bytes) if model == "ls" else
             EquivariantLocalScore(data, patch=sched, bank_size=spec.els_bank_size, seed=bank_seed,
                                   max_chunk_bytes=spec.max_chunk_bytes))
    classifier, record = load_classifier(classifier_path, device=device)
    lam = float(json.loads(Path(spectrum_path).read_text())["lambda_first_channel"])
    t_s_theory = 0.5 * math.log(lam)
    t_c_entropy = float(pd.read_csv(entropy_path)["t_c_entropy"].iloc[0])
    times = regimes_spec.branch_times(t_speciation=t_s_theory, t_collapse=t_c_entropy,
                                      schedule=DDPMSchedule())
    sweep_seed = derived_seed(seed, "ideal-models-regimes", subset.dataset)
    result = cloning_experiment(score=score, training=data, labeller=lambda x: probabilities(classifier, x),
                                spec=regimes_spec, n_pairs=spec.regimes_pairs, steps=spec.regimes_steps,
                                times=times, seed=sweep_seed, variance="large", chunk_dir=chunk_dir,
                                progress=progress)
    summary = {**result.summary(), "model": model, "dataset": subset.dataset, "n": subset.n,
               "t_s_theory": t_s_theory, "t_c_entropy": t_c_entropy, "p_sizes": list(sched.sizes),
               "p_times": list(sched.times), "classifier_accuracy": record["held_out_accuracy"]}
    config = {"ideal_models": to_dict(spec), "model": model, "dataset": subset.dataset}
    write_table(result.branch_table(), branches_path, config=config, seed=sweep_seed)
    write_json(summary_path, summary, config=config, seed=sweep_seed)
    return summary


__all__ = [
    "MACHINES",
    "IdealModelsResult",
    "IdealModelsSpec",
    "Trajectories",
    "calibrate_patch",
    "calibrated_schedule",
    "compare_ideal_models",
    "machine_regimes",
    "ideal_models_table",
    "run_comparison",
    "denoise",
    "median_interval",
    "ode_trajectories",
    "r_squared",
]
