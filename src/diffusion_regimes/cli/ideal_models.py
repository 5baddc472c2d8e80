"""Commands of the ideal-models stage: which ideal model a trained UNet follows (docs/science.md section 7).

``ideal-models-compare``  same-noise ODE samples of the networks, the exact score, LS and ELS on one subset
``ideal-models-figure``   sample grid, r^2 distributions, denoiser r^2 along the trajectory, P(t)
``ideal-models-regimes``  cloning sweep (phi, t_S fit, phi_C, memorised fraction) of LS or ELS at its P(t)
``ideal-models-table``    results/tables/ideal_models.csv from every dataset's summary
(The stage's networks are trained by ``train-ddpm``, cli/train.py.)
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from diffusion_regimes.cli.common import add_spec_arguments, ensure_writable, job_summary, spec_record
from diffusion_regimes.config import from_json
from diffusion_regimes.errors import ConfigError
from diffusion_regimes.runtime import resolve_device, set_threads

log = logging.getLogger(__name__)


def _checkpoints(pairs: list[str]) -> dict[str, Path]:
    out = {}
    for pair in pairs:
        name, sep, path = pair.partition("=")
        if not sep or not name or not path:
            raise ConfigError(f"--checkpoint expects NAME=PATH (a UNet preset and its final.pt), "
                              f"got {pair!r}")
        out[name] = Path(path)
    return out


def _compare(args: argparse.Namespace) -> None:
    from diffusion_regimes.ideal_models import IdealModelsSpec, run_comparison

    set_threads(args.threads)
    spec = from_json(IdealModelsSpec, args.spec, where="ideal_models")
    outputs = {"summary": args.summary, "per_sample": args.per_sample, "trajectory": args.trajectory,
               "calibration": args.calibration, "bank_study": args.bank_study, "grid": args.grid}
    ensure_writable(*outputs.values())
    summary = run_comparison(subset_path=args.subset, checkpoints=_checkpoints(args.checkpoint), spec=spec,
                             seed=args.seed, device=resolve_device(args.device), outputs=outputs,
                             log=log.info)
    for row in summary.itertuples():
        log.info("%s vs UNet %s: median r2 %.3f [%.3f, %.3f], memorised %.3f, P %s-%s", row.model,
                 row.network, row.r2_median, row.r2_low, row.r2_high, row.memorised_fraction, row.p_min,
                 row.p_max)
    top = summary[summary["network"] == spec.reference].set_index("model")
    job_summary().update({f"r2_{m}": float(top.loc[m, "r2_median"]) for m in ("exact", "ls", "els")})


def _figure(args: argparse.Namespace) -> None:
    import pandas as pd
    import torch

    from diffusion_regimes.ideal_models import IdealModelsSpec
    from diffusion_regimes.plots import save_figure
    from diffusion_regimes.plots.ideal_models import ideal_models_figure

    spec = from_json(IdealModelsSpec, args.spec, where="ideal_models")
    stored = torch.load(args.grid, weights_only=True)
    fig = ideal_models_figure(grid=stored["grid"], channel_means=stored["channel_means"],
                              per_sample=pd.read_csv(args.per_sample),
                              trajectory=pd.read_csv(args.trajectory),
                              calibration=pd.read_csv(args.calibration), reference=spec.reference,
                              title=f"{args.dataset}: which ideal model does the UNet follow?")
    save_figure(fig, args.figure, config={"ideal_models": spec_record(args.spec), "dataset": args.dataset},
                seed=args.seed)


def _regimes(args: argparse.Namespace) -> None:
    from diffusion_regimes.ideal_models import IdealModelsSpec, machine_regimes
    from diffusion_regimes.regimes import RegimesSpec

    set_threads(args.threads)
    spec = from_json(IdealModelsSpec, args.spec, where="ideal_models")
    regimes_spec = from_json(RegimesSpec, args.regimes_spec, where="regimes")
    ensure_writable(args.summary, args.branches)
    summary = machine_regimes(subset_path=args.subset, calibration_path=args.calibration,
                              classifier_path=args.classifier, spectrum_path=args.spectrum,
                              entropy_path=args.entropy, model=args.model, spec=spec,
                              regimes_spec=regimes_spec, seed=args.seed, device=resolve_device(args.device),
                              summary_path=args.summary, branches_path=args.branches,
                              chunk_dir=args.chunk_dir)
    job_summary().update(model=args.model, t_S_fit=summary["t_s_fit"], t_C_fit=summary["t_c_phi_c_fit"],
                         memorised_fraction=summary["memorised_fraction"])


def _table(args: argparse.Namespace) -> None:
    from diffusion_regimes.ideal_models import ideal_models_table
    from diffusion_regimes.provenance import write_table

    frame = ideal_models_table(args.summaries, sweeps=args.sweeps)
    write_table(frame, args.out, config={"summaries": [str(p) for p in args.summaries],
                                         "sweeps": [str(p) for p in args.sweeps]}, seed=args.seed)
    job_summary().update(rows=len(frame))


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ideal-models-compare",
                       help="same-noise ODE samples: networks vs exact score vs LS vs ELS (P(t) calibrated)")
    add_spec_arguments(p)
    p.add_argument("--subset", required=True, type=Path, help="prepared subset (subset.pt)")
    p.add_argument("--checkpoint", action="append", default=[], metavar="NAME=PATH",
                   help="a network: its UNet preset name and final.pt (repeat for each)")
    for name in ("summary", "per-sample", "trajectory", "calibration", "bank-study"):
        p.add_argument(f"--{name}", required=True, type=Path, help=f"{name} table (.csv)")
    p.add_argument("--grid", required=True, type=Path, help="samples of the first noises (.pt)")
    p.set_defaults(func=_compare, uses_network=True)

    p = sub.add_parser("ideal-models-figure", help="figure of one dataset's ideal-model comparison")
    add_spec_arguments(p)
    p.add_argument("--dataset", required=True)
    for name in ("per-sample", "trajectory", "calibration"):
        p.add_argument(f"--{name}", required=True, type=Path)
    p.add_argument("--grid", required=True, type=Path)
    p.add_argument("--figure", required=True, type=Path, help=".pdf (a .png is written beside it)")
    p.set_defaults(func=_figure)

    p = sub.add_parser("ideal-models-regimes", help="cloning sweep of LS or ELS at its calibrated P(t)")
    add_spec_arguments(p)
    p.add_argument("--regimes-spec", required=True, help="JSON of the regimes stage's sweep keys")
    p.add_argument("--model", required=True, choices=("ls", "els"))
    for name in ("subset", "calibration", "classifier", "spectrum", "entropy"):
        p.add_argument(f"--{name}", required=True, type=Path)
    p.add_argument("--summary", required=True, type=Path, help="summary (.json)")
    p.add_argument("--branches", required=True, type=Path, help="phi per branch time (.csv)")
    p.add_argument("--chunk-dir", type=Path, default=None, help="resumable chunks of pairs")
    p.set_defaults(func=_regimes, gpu_capable=True)

    p = sub.add_parser("ideal-models-table", help="gather results/tables/ideal_models.csv")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--summaries", nargs="+", required=True, type=Path)
    p.add_argument("--sweeps", nargs="*", default=[], type=Path, help="summaries of ideal-models-regimes")
    p.add_argument("--out", required=True, type=Path)
    p.set_defaults(func=_table)
