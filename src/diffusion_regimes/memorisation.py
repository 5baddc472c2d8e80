"""Training time as a third axis: when does a learned denoiser start to memorise? (docs/science.md,
section "Training time: memorisation").

For each training-set size n (the first n images of a prepared subset) a UNet is trained from scratch with
a constant learning rate after warm-up (a decaying rate would confound the time axis) and checkpointed on
a log-spaced grid of optimiser steps (:func:`checkpoint_grid`).  At every checkpoint, on the raw and on the
EMA weights separately, :func:`measure_weights` runs one shared-trunk cloning sweep
(:func:`regimes.cloning_experiment`, the same measurement as the regimes stage) and the denoising loss:

* the memorised fraction (nearest / second-nearest training distance < 1/3) with a bootstrap interval;
* the quality gate of the regimes stage (phi at the smallest branch time; classifier-confident fraction
  against the held-out real images);
* the denoising loss on the n training images and on held-out images (the generalisation gap), with
  common random numbers (the same steps k and noises for both sets, so the gap's error is small);
* the learned collapse: t̂_C per trajectory, and the phi_C fit (clones locking onto one training image).

The exact empirical score of the same n images is measured once with the same sweep (its t̂_C and t_C are
where the learned values should go when the model memorises).  :func:`onset_times` fits the two times
per series -- tau_mem (memorised fraction) and tau_gen (the confident fraction reaching the gate) -- with
:func:`estimators.fit_onset`, and :func:`exponents` fits tau = c n^gamma (:func:`estimators.fit_power_law`).

Resumable at two levels: training resumes from its newest checkpoint (:mod:`train`), and every
(checkpoint, weights) measurement is cached as a JSON file named after everything that determines it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from diffusion_regimes.config import to_dict
from diffusion_regimes.errors import ConfigError, DataError
from diffusion_regimes.estimators import fit_onset, fit_power_law
from diffusion_regimes.measures import MEMORISED_RATIO, bootstrap_means
from diffusion_regimes.seeds import derived_seed
from diffusion_regimes.unet import UNetConfig, UNetSpec

log = logging.getLogger(__name__)

WEIGHTS = ("raw", "ema")
"""The two weight kinds measured at every checkpoint: the optimiser's weights and their EMA."""


@dataclass(frozen=True)
class MemorisationSpec:
    """The ``memorisation:`` config section (config/README.md explains every key)."""

    datasets: tuple[str, ...] = ()  # prepared subsets; empty = the stage is off (the default run)
    n_values: tuple[int, ...] = (16, 32, 64, 128, 256)  # training-set sizes (even: balanced prefixes)
    seeds: tuple[int, ...] = (0,)  # training seeds at every n
    extra_seeds: tuple[int, ...] = (1,)  # further seeds at the smallest extra_seed_sizes values of n
    extra_seed_sizes: int = 2
    preset: str = "narrow"  # UNet preset (unet.PRESETS)
    widths: tuple[int, ...] = (16,)  # base channels; the first at every n, the others at width_n only
    width_n: int = 32
    # side of the images the series trains on: 0 = the subset's own; a divisor of it = area-pooled images
    # (PreparedSubset.pooled), e.g. 16 for MNIST's 32: four times cheaper per image, for a CPU series
    resolution: int = 0
    batch_size: int = 32
    lr: float = 1e-3  # constant Adam learning rate after the warm-up
    lr_warmup: int = 100
    ema_decay: float = 0.999
    first_step: int = 100  # first checkpoint
    steps_per_image: float = 250.0  # last checkpoint: max(min_steps, steps_per_image * n)
    min_steps: int = 4000
    checkpoints_per_decade: int = 6
    samples: int = 64  # generated samples (trunks of the cloning sweep) per checkpoint and weight kind
    sampler_steps: int = 100  # respaced DDPM ancestral sampler (K of the 1000 steps)
    sampler_variance: str = "large"
    branch_times: tuple[float, ...] = (0.05, 0.2, 0.5, 1.0, 2.0)  # clones for phi and phi_C
    held_out: int = 256  # held-out images (the last of the subset) of the denoising loss
    loss_evaluations: int = 2048  # (image, k, noise) draws of each denoising loss
    n_boot: int = 400
    onset_level: float = 0.5  # tau_mem: where the fitted memorised fraction reaches this level
    quality_phi_min: float = 0.97
    quality_confidence_gap: float = 0.10

    def __post_init__(self) -> None:
        if any(n < 2 or n % 2 for n in self.n_values):
            raise ConfigError(f"memorisation.n_values: {list(self.n_values)} must be even sizes >= 2 "
                              "(balanced prefixes of the subset)")
        if not self.widths:
            raise ConfigError("memorisation.widths: give at least one base channel count")
        if self.samples < 2 or self.sampler_steps < 2 or self.first_step < 1:
            raise ConfigError("memorisation: samples and sampler_steps must be >= 2, first_step >= 1")
        if self.checkpoints_per_decade < 1:
            raise ConfigError("memorisation.checkpoints_per_decade must be >= 1")
        if not 0.0 < self.onset_level < 1.0:
            raise ConfigError(f"memorisation.onset_level must lie in (0, 1), got {self.onset_level}")
        if not 0.0 <= self.ema_decay < 1.0 or self.ema_decay == 0.0:
            raise ConfigError(f"memorisation.ema_decay must lie in (0, 1): raw and EMA weights are both "
                              f"measured; got {self.ema_decay}")
        if len(self.branch_times) < 2 or any(t <= 0 for t in self.branch_times):
            raise ConfigError("memorisation.branch_times: give >= 2 positive times")

    def last_step(self, n: int) -> int:
        """The last checkpoint of the series at size ``n``: ``max(min_steps, steps_per_image n)``."""
        return int(max(self.min_steps, round(self.steps_per_image * n)))

    def series(self) -> list[tuple[int, int, int]]:
        """``(width, n, seed)`` of every training run, in a fixed order."""
        runs = []
        small = sorted(self.n_values)[: self.extra_seed_sizes]
        for n in self.n_values:
            seeds = list(self.seeds) + ([s for s in self.extra_seeds if s not in self.seeds] if n in small
                                        else [])
            runs += [(self.widths[0], n, s) for s in seeds]
        for width in self.widths[1:]:
            runs += [(width, self.width_n, s) for s in self.seeds]
        return runs

    def model_config(self, *, width: int, in_channels: int, image_size: int) -> UNetConfig:
        return UNetSpec(preset=self.preset, base_channels=width).resolve(in_channels=in_channels,
                                                                          image_size=image_size)

    def train_config(self, n: int):
        """The training recipe at size ``n``: constant lr after warm-up, checkpoints on the grid."""
        from diffusion_regimes.train import TrainConfig

        grid = checkpoint_grid(first=self.first_step, last=self.last_step(n),
                               per_decade=self.checkpoints_per_decade)
        return TrainConfig(steps=grid[-1], batch_size=self.batch_size, lr=self.lr, lr_schedule="constant",
                           lr_warmup=self.lr_warmup, checkpoint_every=grid[-1], keep_checkpoints=1,
                           checkpoint_steps=tuple(grid), log_every=50, ema_decay=self.ema_decay,
                           grid_images=0)


def checkpoint_grid(*, first: int, last: int, per_decade: int) -> list[int]:
    """Optimiser steps ``first 10^(i / per_decade)`` below ``last``, then ``last`` (ascending, integers,
    no repeats).

    A fixed lattice rather than ``geomspace(first, last)``: raising ``last`` (a longer series) only adds
    checkpoints, so the measurements of a shorter run stay valid and are reused.
    """
    if not 1 <= first <= last:
        raise ConfigError(f"checkpoint grid: need 1 <= first ({first}) <= last ({last})")
    count = int(math.floor(per_decade * math.log10(last / first) + 1e-9)) + 1
    lattice = {int(round(first * 10 ** (i / per_decade))) for i in range(count)}
    return sorted({s for s in lattice if s < last} | {last})


# ------------------------------------------------------------------------------- measurements
def denoising_losses(model: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                     sets: Sequence[torch.Tensor],
                     *, evaluations: int, seed: int, batch: int = 256) -> list[tuple[float, float]]:
    """Mean noise-prediction loss (docs/science.md section 6) of ``model`` on each image set of ``sets``,
    and the standard error of each set's loss minus the first set's.

    Draw r (``r < evaluations``) uses image ``r mod len(set)``, step ``k_r`` uniform in 1..L and noise
    ``xi_r`` from one generator seeded by ``seed``: the same (k, xi) for every set (common random
    numbers), so a difference between sets is not drowned by the spread of the loss over k.  Returns
    ``[(loss, se_of_difference_to_sets[0]), ...]`` (the first entry's error is its own standard error).
    """
    from diffusion_regimes.schedule import DDPMSchedule

    alpha_bar = DDPMSchedule().alpha_bar
    shape = tuple(sets[0].shape[1:])
    gen = torch.Generator().manual_seed(seed)
    k = torch.randint(1, alpha_bar.numel(), (evaluations,), generator=gen)
    xi = torch.randn((evaluations, *shape), generator=gen)
    abar = alpha_bar[k].to(torch.float32).view(-1, 1, 1, 1)
    per_set = []
    with torch.no_grad():
        for images in sets:
            idx = torch.arange(evaluations) % images.shape[0]
            x = abar.sqrt() * images[idx].to(torch.float32) + (1.0 - abar).sqrt() * xi
            out = torch.cat([model(x[s:s + batch], k[s:s + batch]) for s in range(0, evaluations, batch)])
            per_set.append(((out.float() - xi) ** 2).flatten(1).mean(dim=1).to(torch.float64))
    first = per_set[0]
    result = [(float(first.mean()), float(first.std(unbiased=True) / math.sqrt(evaluations)))]
    for values in per_set[1:]:
        diff = values - first
        result.append((float(values.mean()), float(diff.std(unbiased=True) / math.sqrt(evaluations))))
    return result


def fraction_interval(indicator: torch.Tensor, *, n_boot: int, generator: torch.Generator,
                      confidence: float = 0.95) -> tuple[float, float]:
    """Bootstrap percentile interval of the mean of the 0/1 ``indicator`` ``(N,)``."""
    boot = bootstrap_means(indicator.to(torch.float64)[None, :], n_boot=n_boot, generator=generator)[0]
    low, high = np.quantile(boot.numpy(), [0.5 * (1 - confidence), 0.5 * (1 + confidence)])
    return float(low), float(high)


MEASURE_COLUMNS = (
    "memorised_fraction", "memorised_low", "memorised_high", "memorised_count", "samples",
    "memorisation_ratio_median", "confident_fraction", "confident_count", "real_confident_fraction",
    "phi_t_min", "quality_ok", "quality",
    "loss_train", "loss_held_out", "generalisation_gap", "gap_se",
    "t_c_hat_mean", "t_c_hat_se", "t_c_hat_median", "t_c_phi_c_fit", "t_c_phi_c_fit_low",
    "t_c_phi_c_fit_high", "phi_c_t_min", "sweep_seconds",
)


def measure_weights(model: torch.nn.Module, *, training: torch.Tensor, held_out: torch.Tensor | None,
                    labeller: Callable[[torch.Tensor], torch.Tensor], real_confident_fraction: float,
                    spec: MemorisationSpec, seed: int, device: torch.device) -> dict:
    """Every per-checkpoint quantity of :data:`MEASURE_COLUMNS` for one set of weights (eval mode), or for
    the exact empirical score of ``training`` when ``model`` is None.

    ``training``: ``(n, C, H, W)``; ``held_out``: ``(m, C, H, W)`` (None: no loss columns).  ``seed`` fixes
    the sweep's starting noise and the loss draws: the same at every checkpoint, so the series compares
    the weights on the same trajectories (a paired comparison along training time).
    """
    from diffusion_regimes.regimes import RegimesSpec, cloning_experiment, quality_verdict
    from diffusion_regimes.score import EmpiricalScore, NoisePredictorScore

    regimes = RegimesSpec(chunk_pairs=spec.samples, n_boot=spec.n_boot, strip_times=2,
                          quality_phi_min=spec.quality_phi_min,
                          quality_confidence_gap=spec.quality_confidence_gap)
    if model is None:
        score = EmpiricalScore(training.reshape(training.shape[0], -1).to(device=device, dtype=torch.float64),
                               max_chunk_bytes=regimes.max_chunk_bytes)
    else:
        score = NoisePredictorScore(model, image_shape=tuple(training.shape[1:]), device=device)
    start = time.perf_counter()
    result = cloning_experiment(score=score, training=training, labeller=labeller, spec=regimes,
                                n_pairs=spec.samples, steps=spec.sampler_steps,
                                variance=spec.sampler_variance,
                                times=np.asarray(spec.branch_times), seed=derived_seed(seed, "sweep"))
    summary = result.summary()
    memorised = torch.as_tensor(result.memorisation < MEMORISED_RATIO)
    low, high = fraction_interval(memorised, n_boot=spec.n_boot,
                                  generator=torch.Generator().manual_seed(derived_seed(seed, "memorised")))
    ok, reason = quality_verdict(phi_t_min=summary["phi_t_min"],
                                 confident_fraction=summary["confident_fraction"],
                                 real_confident_fraction=real_confident_fraction, spec=regimes)
    row = {
        "memorised_fraction": float(memorised.double().mean()), "memorised_low": low,
        "memorised_high": high, "memorised_count": int(memorised.sum()), "samples": int(memorised.numel()),
        "memorisation_ratio_median": summary["memorisation_ratio_median"],
        "confident_fraction": summary["confident_fraction"],
        "confident_count": int(round(summary["confident_fraction"] * memorised.numel())),
        "real_confident_fraction": real_confident_fraction,
        "phi_t_min": summary["phi_t_min"], "quality_ok": bool(ok), "quality": reason,
        "t_c_hat_mean": summary["t_c_hat_mean"], "t_c_hat_se": summary["t_c_hat_se"],
        "t_c_hat_median": summary["t_c_hat_median"], "t_c_phi_c_fit": summary["t_c_phi_c_fit"],
        "t_c_phi_c_fit_low": summary["t_c_phi_c_fit_low"],
        "t_c_phi_c_fit_high": summary["t_c_phi_c_fit_high"],
        "phi_c_t_min": float(result.phi_c[0]),
        "loss_train": math.nan, "loss_held_out": math.nan, "generalisation_gap": math.nan, "gap_se": math.nan,
    }
    if model is not None and held_out is not None:
        def eps(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
            return model(x.to(device), k.to(device)).cpu()

        (train_loss, _), (held_loss, gap_se) = denoising_losses(
            eps, [training, held_out], evaluations=spec.loss_evaluations, seed=derived_seed(seed, "loss"))
        row.update(loss_train=train_loss, loss_held_out=held_loss, generalisation_gap=held_loss - train_loss,
                   gap_se=gap_se)
    row["sweep_seconds"] = time.perf_counter() - start
    return row


# ------------------------------------------------------------------------------- one series
MEASURE_KEYS = ("samples", "sampler_steps", "sampler_variance", "branch_times", "held_out",
                "loss_evaluations",
                "n_boot", "quality_phi_min", "quality_confidence_gap", "resolution")
"""Keys of the spec that change a per-checkpoint measurement (they name its cache file)."""

SERIES_KEYS = ("dataset", "width", "parameters", "n", "seed", "weights", "step", "steps_over_n")
SERIES_COLUMNS = (*SERIES_KEYS, *MEASURE_COLUMNS, "t_c_hat_exact_mean", "t_c_hat_exact_se",
                  "t_c_phi_c_fit_exact", "memorised_fraction_exact", "train_seconds")


@dataclass(frozen=True)
class SeriesInputs:
    """What one series measures on: the subset's images, its classifier and the held-out reference."""

    images: torch.Tensor  # (N, C, H, W) the prepared subset; training = first n, held-out = last `held_out`
    labeller: Callable[[torch.Tensor], torch.Tensor]
    real_confident_fraction: float
    dataset: str
    digest: str  # of the subset and classifier files (names the measurement cache)
    extra: dict = field(default_factory=dict)


def _cache_name(kind: str, step: int, key: dict) -> str:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:12]
    return f"{kind}-{step:08d}-{digest}.json"


def run_series(inputs: SeriesInputs, *, spec: MemorisationSpec, n: int, seed: int, width: int,
               run_dir: Path, device: torch.device, base_seed: int = 0,
               progress: bool = False) -> pd.DataFrame:
    """Train (or resume) the series ``(width, n, seed)`` and measure every checkpoint; one row per
    (weights, checkpoint) in :data:`SERIES_COLUMNS`.  Finished measurements are read back from
    ``run_dir/measure``.  ``seed`` is the series' training seed (a ``memorisation.seeds`` entry); every
    random stream derives from it and the config's ``base_seed``."""
    from diffusion_regimes.checkpoints import checkpoint_path, list_checkpoints, load_checkpoint
    from diffusion_regimes.train import run_key, train_ddpm
    from diffusion_regimes.unet import UNet, count_parameters

    images = inputs.images
    total = int(images.shape[0])
    if n + spec.held_out > total:
        raise ConfigError(f"memorisation: n = {n} training images plus memorisation.held_out = "
                          f"{spec.held_out} held-out ones exceed the {total} images of the {inputs.dataset} "
                          "subset; lower them or raise datasets.<name>.n")
    training = images[:n].contiguous()
    held_out = images[total - spec.held_out:].contiguous() if spec.held_out else None
    _, c, h, _ = images.shape
    model_config = spec.model_config(width=width, in_channels=c, image_size=h)
    config = spec.train_config(n)
    run_dir = Path(run_dir)
    start = time.perf_counter()
    root = derived_seed(base_seed, "memorisation", seed)
    train_seed = derived_seed(root, "train")
    # checkpoints of an earlier, shorter series (its last step is off the lattice) stay: they were measured
    key_dir = run_dir / "runs" / run_key(model_config=model_config, config=config,
                                         batch_size=config.batch_size, seed=train_seed, images=training)
    earlier = {step for step, _ in list_checkpoints(key_dir) if step <= config.steps}
    config = replace(config, checkpoint_steps=tuple(sorted(set(config.checkpoint_steps) | earlier)))
    result = train_ddpm(training, model_config=model_config, config=config, run_dir=run_dir / "runs",
                        seed=train_seed, device=device, progress=progress)
    train_seconds = time.perf_counter() - start
    cache = run_dir / "measure"
    cache.mkdir(parents=True, exist_ok=True)
    # the same sweep noise and loss draws at every checkpoint and for every seed of this n
    measure_seed = derived_seed(base_seed, "memorisation-measure", n)
    # what determines a measurement: its own settings, the training run (its folder's key hashes the
    # architecture, recipe, seed and data) and the input files; not the length of the series
    key = {"measure": {name: to_dict(getattr(spec, name)) for name in MEASURE_KEYS},
           "n": n, "width": width, "seed": seed, "run": result.run_dir.name, "inputs": inputs.digest}

    def cached(kind: str, step: int, compute: Callable[[], dict]) -> dict:
        path = cache / _cache_name(kind, step, key)
        if path.is_file():
            return json.loads(path.read_text())
        from diffusion_regimes.provenance import write_json

        row = compute()
        write_json(path, row, config=key, seed=measure_seed)
        log.info("n=%d seed=%d %s step %d: memorised %.3f, confident %.3f, t_C hat %.3f (%.0f s)", n, seed,
                 kind, step, row["memorised_fraction"], row["confident_fraction"], row["t_c_hat_mean"],
                 row["sweep_seconds"])
        return row

    exact = cached("exact", 0, lambda: measure_weights(
        None, training=training, held_out=None, labeller=inputs.labeller,
        real_confident_fraction=inputs.real_confident_fraction, spec=spec, seed=measure_seed, device=device))
    net = UNet(model_config).to(device).eval()
    rows = []
    # the grid, and checkpoints of an earlier shorter series (its last step) below the last step
    grid = sorted(set(config.checkpoint_steps) | {step for step, _ in list_checkpoints(result.run_dir)
                                                    if step <= config.steps})
    jobs = [(step, kind) for step in grid for kind in WEIGHTS]
    if progress:
        from diffusion_regimes.progress import progress as bar

        jobs = bar(jobs, desc=f"measure n={n} seed={seed}", unit="ckpt")
    for step, kind in jobs:
        def compute(step: int = step, kind: str = kind) -> dict:
            ckpt = load_checkpoint(checkpoint_path(result.run_dir, step), device=device)
            net.load_state_dict(ckpt["model"] if kind == "raw" else ckpt["ema"])
            return measure_weights(net, training=training, held_out=held_out, labeller=inputs.labeller,
                                   real_confident_fraction=inputs.real_confident_fraction, spec=spec,
                                   seed=measure_seed, device=device)

        row = cached(kind, step, compute)
        rows.append({"dataset": inputs.dataset, "width": width, "parameters": count_parameters(net), "n": n,
                     "seed": seed, "weights": kind, "step": step, "steps_over_n": step / n, **row,
                     "t_c_hat_exact_mean": exact["t_c_hat_mean"], "t_c_hat_exact_se": exact["t_c_hat_se"],
                     "t_c_phi_c_fit_exact": exact["t_c_phi_c_fit"],
                     "memorised_fraction_exact": exact["memorised_fraction"], "train_seconds": train_seconds})
    frame = pd.DataFrame(rows)
    return frame[list(SERIES_COLUMNS)]


def load_series_inputs(subset_path: str | Path, classifier_path: str | Path, *, device: torch.device,
                       resolution: int = 0, held_out: int = 0) -> SeriesInputs:
    """The subset (area-pooled to ``resolution`` when it is not 0), its classifier (labeller) and the
    classifier's confident fraction on real images.

    At the subset's own resolution the confident fraction is the classifier's, measured on its held-out
    split.  Pooled images are labelled after nearest-neighbour upsampling back to the classifier's side,
    and their real reference is the same labeller on the last ``held_out`` pooled images of the subset
    (the held-out images of the denoising loss; the classifier may have trained on some of them).
    """
    from diffusion_regimes.classifier import confident_fraction, load_classifier, probabilities
    from diffusion_regimes.data import PreparedSubset

    for path, rule in ((subset_path, "prepare_subset"), (classifier_path, "classifier")):
        if not Path(path).is_file():
            raise DataError(f"{path} not found; the workflow writes it (rule {rule}: snakemake {path})")
    subset = PreparedSubset.load(subset_path)
    side = subset.shape[-1]
    classifier, record = load_classifier(classifier_path, device=device)
    digest = hashlib.sha256(f"resolution={resolution}".encode())
    for path in (subset_path, classifier_path):
        digest.update(Path(path).read_bytes())
    real = float(record.get("held_out_confident_fraction", math.nan))
    if resolution and resolution != side:
        try:
            subset = subset.pooled(resolution)
        except DataError as exc:
            raise ConfigError(f"memorisation.resolution: {exc}") from exc
        factor = side // resolution

        def labeller(x: torch.Tensor) -> torch.Tensor:
            up = x.repeat_interleave(factor, dim=-2).repeat_interleave(factor, dim=-1)
            return probabilities(classifier, up)

        real = confident_fraction(labeller(subset.images[subset.n - max(held_out, 1):]))
    else:
        def labeller(x: torch.Tensor) -> torch.Tensor:
            return probabilities(classifier, x)
    return SeriesInputs(images=subset.images, labeller=labeller, real_confident_fraction=real,
                        dataset=subset.dataset, digest=digest.hexdigest(),
                        extra={"classifier_accuracy": record["held_out_accuracy"]})


def series_from_paths(*, subset: str | Path, classifier: str | Path, out: str | Path, spec: MemorisationSpec,
                      n: int, seed: int, width: int, run_dir: str | Path, device: torch.device,
                      config_record: dict, base_seed: int = 0, progress: bool = True) -> pd.DataFrame:
    """The ``memorisation-series`` job: run :func:`run_series` and write its table (with provenance)."""
    from diffusion_regimes.provenance import write_table

    inputs = load_series_inputs(subset, classifier, device=device, resolution=spec.resolution,
                                held_out=spec.held_out)
    frame = run_series(inputs, spec=spec, n=n, seed=seed, width=width, run_dir=Path(run_dir), device=device,
                       base_seed=base_seed, progress=progress)
    frame.insert(len(frame.columns), "classifier_accuracy", inputs.extra["classifier_accuracy"])
    write_table(frame, out, config=config_record, seed=seed)
    return frame


# ------------------------------------------------------------------------------- the two times
TIMES_KEYS = ("dataset", "width", "n", "seed", "weights")
TIMES_COLUMNS = (*TIMES_KEYS, "tau_mem", "tau_mem_low", "tau_mem_high", "tau_mem_censored", "tau_mem_width",
                 "tau_gen", "tau_gen_low", "tau_gen_high", "tau_gen_censored", "gen_level", "ema_delay",
                 "max_memorised_fraction", "held_out_best_step", "last_step", "t_c_hat_first",
                 "t_c_hat_last", "t_c_hat_exact_mean",
                 "gamma", "gamma_low", "gamma_high", "gamma_points", "gamma_gen", "gamma_gen_low",
                 "gamma_gen_high", "gamma_gen_points")


def onset_times(table: pd.DataFrame, *, spec: MemorisationSpec, seed: int) -> pd.DataFrame:
    """tau_mem and tau_gen per (dataset, width, n, seed, weights) series of the memorisation table, the EMA
    delay (tau_mem of the EMA over that of the raw weights, same run), and per (dataset, width, weights)
    the exponents gamma (tau_mem ~ n^gamma) and gamma' (tau_gen) with their intervals."""
    missing = [c for c in SERIES_COLUMNS if c not in table.columns]
    if missing:
        raise DataError(f"memorisation table lacks the column(s) {missing}: re-run the memorisation_series "
                        "jobs")
    rows = []
    for keys, group in table.groupby(list(TIMES_KEYS), sort=True):
        group = group.sort_values("step")
        gen = torch.Generator().manual_seed(derived_seed(seed, "onset", *[str(k) for k in keys]))
        samples = int(group["samples"].iloc[0])
        mem = fit_onset(group["step"].to_numpy(), group["memorised_count"].to_numpy(), samples,
                        level=spec.onset_level, n_boot=spec.n_boot, generator=gen)
        # tau_gen: the confident fraction reaching the quality gate's threshold (real - gap)
        gen_level = float(group["real_confident_fraction"].iloc[0]) - spec.quality_confidence_gap
        if 0.0 < gen_level < 1.0:
            gfit = fit_onset(group["step"].to_numpy(), group["confident_count"].to_numpy(), samples,
                             level=gen_level, n_boot=spec.n_boot, generator=gen)
            tau_gen = (gfit.time, gfit.low, gfit.high, gfit.censored)
        else:
            tau_gen = (math.nan, math.nan, math.nan, "no level")
        rows.append(dict(zip(TIMES_KEYS, keys, strict=True)) | {
            "tau_mem": mem.time, "tau_mem_low": mem.low, "tau_mem_high": mem.high,
            "tau_mem_censored": mem.censored, "tau_mem_width": mem.width,
            "tau_gen": tau_gen[0], "tau_gen_low": tau_gen[1], "tau_gen_high": tau_gen[2],
            "tau_gen_censored": tau_gen[3], "gen_level": gen_level,
            "max_memorised_fraction": float(group["memorised_fraction"].max()),
            # the checkpoint of lowest held-out denoising loss: where the model generalises best
            "held_out_best_step": (int(group.loc[group["loss_held_out"].idxmin(), "step"])
                                   if group["loss_held_out"].notna().any() else -1),
            "last_step": int(group["step"].max()),
            "t_c_hat_first": float(group["t_c_hat_mean"].iloc[0]),
            "t_c_hat_last": float(group["t_c_hat_mean"].iloc[-1]),
            "t_c_hat_exact_mean": float(group["t_c_hat_exact_mean"].iloc[0]),
        })
    times = pd.DataFrame(rows)
    raw = times[times["weights"] == "raw"].set_index(["dataset", "width", "n", "seed"])["tau_mem"]

    def delay(row) -> float:
        """tau_mem(EMA) / tau_mem(raw) of the same run; nan unless both onsets are fitted numbers."""
        base = raw.get((row.dataset, row.width, row.n, row.seed), math.nan)
        both = np.isfinite([row.tau_mem, base]).all() and base > 0 and row.tau_mem > 0
        return row.tau_mem / base if row.weights == "ema" and both else math.nan

    times["ema_delay"] = [delay(row) for row in times.itertuples()]
    for column in ("gamma", "gamma_low", "gamma_high", "gamma_gen", "gamma_gen_low", "gamma_gen_high"):
        times[column] = math.nan
    times["gamma_points"] = 0
    times["gamma_gen_points"] = 0
    for (_, _, _), group in times.groupby(["dataset", "width", "weights"]):
        mem = fit_power_law(group["n"], group["tau_mem"], group["tau_mem_low"], group["tau_mem_high"])
        gen = fit_power_law(group["n"], group["tau_gen"], group["tau_gen_low"], group["tau_gen_high"])
        times.loc[group.index, ["gamma", "gamma_low", "gamma_high", "gamma_points"]] = (
            mem.gamma, mem.gamma_low, mem.gamma_high, mem.points)
        times.loc[group.index, ["gamma_gen", "gamma_gen_low", "gamma_gen_high", "gamma_gen_points"]] = (
            gen.gamma, gen.gamma_low, gen.gamma_high, gen.points)
    return times[list(TIMES_COLUMNS)]


def gather(series: Sequence[str | Path], *, table_out: str | Path, times_out: str | Path,
           spec: MemorisationSpec, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The ``memorisation-table`` job: concatenate the series, fit the times, write both tables."""
    from diffusion_regimes.provenance import write_table

    frames = [pd.read_csv(p) for p in series]
    if not frames:
        raise DataError("memorisation-table: no series given")
    table = pd.concat(frames, ignore_index=True).sort_values(["dataset", "width", "n", "seed", "weights",
                                                               "step"]).reset_index(drop=True)
    times = onset_times(table, spec=spec, seed=seed)
    record = {"memorisation": to_dict(spec), "series": [str(p) for p in series]}
    write_table(table, table_out, config=record, seed=seed)
    write_table(times, times_out, config=record, seed=seed)
    return table, times


__all__ = [
    "SERIES_COLUMNS",
    "TIMES_COLUMNS",
    "WEIGHTS",
    "MemorisationSpec",
    "checkpoint_grid",
    "denoising_losses",
    "gather",
    "measure_weights",
    "onset_times",
    "run_series",
    "series_from_paths",
]
