"""Gaussian-mixture commands (docs/science.md section 3): one job per dimension, then merged tables and
figures.

``gm-speciation``    phi(t) for one d and engine -> partial table (one row per branch time)
``gm-collapse``      f^e(t)/alpha for one d -> partial table (one row per time)
``gm-collapse-law``  numerical t_C on a grid of (n, d) against the law t_C(alpha)
``gm-merge``         concatenate partial tables; ``--times`` also writes the measured-vs-theory t_S table
``gm-figures``       the four figures from the tables (and the potential from the config)
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import pandas as pd
import torch

from diffusion_regimes import config as cfg
from diffusion_regimes import theory
from diffusion_regimes.cli.common import add_spec_arguments, job_summary, spec_record
from diffusion_regimes.errors import ConfigError, DataError
from diffusion_regimes.gaussian_mixture import (
    COLLAPSE_COLUMNS,
    LAW_COLUMNS,
    SPECIATION_COLUMNS,
    TIMES_COLUMNS,
)
from diffusion_regimes.provenance import write_table
from diffusion_regimes.runtime import resolve_device, set_threads
from diffusion_regimes.seeds import derived_seed

log = logging.getLogger(__name__)

def _section(args: argparse.Namespace):
    from diffusion_regimes.gaussian_mixture import GaussianMixtureConfig

    return cfg.from_json(GaussianMixtureConfig, args.spec, where="gaussian_mixture")


def _speciation(args: argparse.Namespace) -> None:
    from diffusion_regimes.gaussian_mixture import GaussianMixture, speciation

    section = _section(args)
    sp = section.speciation
    set_threads(args.threads)
    pairs = args.pairs if args.pairs is not None else sp.pairs
    seed = derived_seed(args.seed, "gm-speciation", args.d, args.engine, pairs)
    start = time.perf_counter()
    res = speciation(
        GaussianMixture.uniform(args.d, mu_tilde=section.mu_tilde, sigma=section.sigma),
        engine=args.engine, pairs=pairs, branch_times=sp.branch_times, t_max=sp.t_max, n_steps=sp.n_steps,
        level=sp.level, n_boot=sp.n_boot, generator=torch.Generator().manual_seed(seed),
        dtype=getattr(torch, sp.dtype), progress=True,
    )
    t_s = float(theory.t_speciation_spectral(args.d, mu_tilde=section.mu_tilde))
    frame = pd.DataFrame({
        "d": args.d, "t": res.branch_times, "t_over_tS": res.branch_times / t_s, "phi_sim": res.phi,
        "stderr": res.stderr,
        "phi_theory": theory.cloning_probability(res.branch_times, d=args.d, mu_tilde=section.mu_tilde,
                                                 sigma=section.sigma),
        "engine": args.engine, "pairs": pairs,
        "t_S_theory": t_s, "t_S_measured": res.crossing.time, "t_S_low": res.crossing.low,
        "t_S_high": res.crossing.high, "level": sp.level,
    }).sort_values("t")
    elapsed = time.perf_counter() - start
    log.info("d=%d engine=%s pairs=%d: t_S measured %.3f [%.3f, %.3f], theory %.3f (%.1f s)", args.d,
             args.engine, pairs, res.crossing.time, res.crossing.low, res.crossing.high, t_s, elapsed)
    write_table(frame, args.output, config=spec_record(args.spec), seed=seed,
                extra={"wall_seconds": elapsed, "engine": args.engine, "d": args.d})
    job_summary().update(d=args.d, engine=args.engine, pairs=pairs, t_S_measured=float(res.crossing.time),
                        t_S_theory=t_s)


def _collapse(args: argparse.Namespace) -> None:
    from diffusion_regimes.gaussian_mixture import collapse, collapse_times_grid

    section = _section(args)
    co = section.collapse
    set_threads(args.threads)
    device = resolve_device(args.device)
    seed = derived_seed(args.seed, "gm-collapse", co.n, args.d, co.n_prime)
    start = time.perf_counter()
    times = collapse_times_grid(t_max=co.t_max, t_min=co.t_min, n_times=co.n_times, kind=co.grid)
    res = collapse(n=co.n, d=args.d, times=times, n_prime=co.n_prime, mu_tilde=section.mu_tilde,
                   sigma=section.sigma, level=co.level, max_chunk_bytes=section.max_chunk_bytes,
                   generator=torch.Generator().manual_seed(seed), device=device, progress=True)
    ent = res.entropy
    frame = pd.DataFrame({
        "d": args.d, "n": co.n, "n_prime": co.n_prime, "t": ent.times, "f_over_alpha": ent.f / ent.alpha,
        "stderr": ent.f_stderr / ent.alpha, "theory": res.theory, "t_C_theory": res.t_c_theory,
        "t_C_numeric": res.numeric.time, "t_C_low": res.numeric.low, "t_C_high": res.numeric.high,
    })
    elapsed = time.perf_counter() - start
    log.info("d=%d n=%d: t_C numeric %.3f [%.3f, %.3f], theory %.3f (%.1f s)", args.d, co.n, res.numeric.time,
             res.numeric.low, res.numeric.high, res.t_c_theory, elapsed)
    write_table(frame, args.output, config=spec_record(args.spec), seed=seed,
                extra={"wall_seconds": elapsed, "d": args.d, "device": str(device)})
    job_summary().update(d=args.d, n=co.n, t_C_numeric=float(res.numeric.time),
                         t_C_theory=float(res.t_c_theory))


def _collapse_law(args: argparse.Namespace) -> None:
    from diffusion_regimes.gaussian_mixture import collapse, collapse_times_grid

    section = _section(args)
    law = section.law
    set_threads(args.threads)
    device = resolve_device(args.device)
    times = collapse_times_grid(t_max=law.t_max, t_min=law.t_min, n_times=law.n_times)
    rows = []
    start = time.perf_counter()
    for n in law.ns:
        for d in law.dims:
            seed = derived_seed(args.seed, "gm-collapse-law", n, d, law.n_prime)
            res = collapse(n=n, d=d, times=times, n_prime=law.n_prime, mu_tilde=section.mu_tilde,
                           sigma=section.sigma, level=section.collapse.level,
                           max_chunk_bytes=section.max_chunk_bytes,
                           generator=torch.Generator().manual_seed(seed), device=device)
            rows.append({"n": n, "d": d, "alpha": res.entropy.alpha, "n_prime": law.n_prime,
                         "t_C_theory": res.t_c_theory, "t_C_numeric": res.numeric.time,
                         "t_C_low": res.numeric.low, "t_C_high": res.numeric.high})
            log.info("law n=%d d=%d alpha=%.4f: t_C numeric %.3f, theory %.3f", n, d, res.entropy.alpha,
                     res.numeric.time, res.t_c_theory)
    elapsed = time.perf_counter() - start
    write_table(pd.DataFrame(rows, columns=LAW_COLUMNS), args.output, config=spec_record(args.spec),
                seed=args.seed, extra={"wall_seconds": elapsed, "device": str(device)})


def _read(path: str) -> pd.DataFrame:
    if not Path(path).is_file():
        raise DataError(f"table not found: {path} (produced by an earlier gm-* rule)")
    return pd.read_csv(path)


def _merge(args: argparse.Namespace) -> None:
    _section(args)  # validates --spec (the merge reads no key of it; it is the tables' provenance)
    frame = pd.concat([_read(p) for p in args.inputs], ignore_index=True)
    if args.kind == "speciation":
        write_table(frame[list(SPECIATION_COLUMNS)].sort_values(["engine", "d", "t"]), args.output,
                    config=spec_record(args.spec), seed=args.seed)
        if args.times_output:
            times = (frame.groupby(["d", "engine", "pairs"], as_index=False)
                     .first()[["d", "engine", "pairs", "t_S_theory", "t_S_measured", "t_S_low", "t_S_high",
                               "level"]]
                     .rename(columns={"t_S_low": "low", "t_S_high": "high"}))
            write_table(times[list(TIMES_COLUMNS)], args.times_output, config=spec_record(args.spec),
                        seed=args.seed)
    elif args.kind == "collapse":
        write_table(frame[list(COLLAPSE_COLUMNS)].sort_values(["d", "t"]), args.output,
                    config=spec_record(args.spec), seed=args.seed)
    else:  # argparse restricts the choices; keep the error specific anyway
        raise ConfigError(f"--kind {args.kind!r}: choose speciation or collapse")


def _figures(args: argparse.Namespace) -> None:
    from diffusion_regimes.plots import gaussian_mixture as gm_plots
    from diffusion_regimes.plots import save_figure

    section = _section(args)
    config = spec_record(args.spec)
    spec = _read(args.speciation)
    spec_times = _read(args.speciation_times)
    save_figure(gm_plots.speciation_figure(spec, spec_times, engine=section.speciation.engine,
                                           level=section.speciation.level, mu_tilde=section.mu_tilde,
                                           sigma=section.sigma),
                args.out_speciation, config=config, seed=args.seed)
    save_figure(gm_plots.collapse_figure(_read(args.collapse), sigma=section.sigma), args.out_collapse,
                config=config, seed=args.seed)
    save_figure(gm_plots.collapse_law_figure(_read(args.law), sigma=section.sigma), args.out_law,
                config=config, seed=args.seed)
    dims = sorted(set(spec["d"]))
    d_potential = int(dims[len(dims) // 2]) if dims else 1024
    save_figure(gm_plots.potential_figure(d=d_potential, mu_tilde=section.mu_tilde,
                                          offsets=section.potential_offsets),
                args.out_potential, config=config, seed=args.seed)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("gm-speciation", help="phi(t) for one dimension by cloning (one engine)")
    add_spec_arguments(p)
    p.add_argument("--d", type=int, required=True, help="dimension")
    p.add_argument("--engine", choices=("full", "reduced"), required=True)
    p.add_argument("--pairs", type=int, default=None, help="clone pairs (default: speciation.pairs)")
    p.add_argument("--output", required=True, help="partial CSV table")
    p.set_defaults(func=_speciation)

    p = sub.add_parser("gm-collapse", help="f^e(t)/alpha and t_C for one dimension")
    add_spec_arguments(p)
    p.add_argument("--d", type=int, required=True, help="dimension")
    p.add_argument("--output", required=True, help="partial CSV table")
    # heavy distance matrices on --device: may ask for a GPU (paper sizes need one, config/README.md)
    p.set_defaults(func=_collapse, gpu_capable=True)

    p = sub.add_parser("gm-collapse-law", help="numerical t_C on the (n, d) grid of law:")
    add_spec_arguments(p)
    p.add_argument("--output", required=True)
    p.set_defaults(func=_collapse_law, gpu_capable=True)

    p = sub.add_parser("gm-merge", help="concatenate partial gm-speciation / gm-collapse tables")
    add_spec_arguments(p)
    p.add_argument("--kind", choices=("speciation", "collapse"), required=True)
    p.add_argument("--inputs", nargs="+", required=True)
    p.add_argument("--output", required=True)
    p.add_argument("--times-output", default=None, help="speciation: measured vs theory t_S table")
    p.set_defaults(func=_merge)

    p = sub.add_parser("gm-figures", help="Gaussian-mixture figures from the merged tables")
    add_spec_arguments(p)
    for name in ("speciation", "speciation-times", "collapse", "law"):
        p.add_argument(f"--{name}", required=True, help=f"{name} table")
    for name in ("speciation", "collapse", "law", "potential"):
        p.add_argument(f"--out-{name}", required=True, help=f"{name} figure (.pdf; a .png is written too)")
    p.set_defaults(func=_figures)
