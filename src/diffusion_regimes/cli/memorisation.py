"""Commands of the memorisation stage: training time as a third axis (docs/science.md, "Training time").

``memorisation-series``   train one (width, n, seed) series from scratch and measure every checkpoint
``memorisation-table``    gather the series; fit tau_mem, tau_gen per series and their exponents in n
``memorisation-figures``  memorised fraction vs steps (and steps / n), the two times vs n, the gap, t̂_C
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from diffusion_regimes.cli.common import add_spec_arguments, ensure_writable, job_summary, spec_record
from diffusion_regimes.config import from_json
from diffusion_regimes.lock import folder_lock
from diffusion_regimes.runtime import resolve_device, set_threads

log = logging.getLogger(__name__)


def _spec(args: argparse.Namespace):
    from diffusion_regimes.memorisation import MemorisationSpec

    return from_json(MemorisationSpec, args.spec, where="memorisation")


def _series(args: argparse.Namespace) -> None:
    from diffusion_regimes.memorisation import series_from_paths

    set_threads(args.threads)
    spec = _spec(args)
    ensure_writable(args.out)
    record = {"memorisation": spec_record(args.spec), "dataset": args.dataset, "n": args.n,
              "series_seed": args.series_seed, "base_seed": args.seed, "width": args.width}
    with folder_lock(args.run_dir):
        frame = series_from_paths(subset=args.subset, classifier=args.classifier, out=args.out, spec=spec,
                                  n=args.n, seed=args.series_seed, width=args.width, run_dir=args.run_dir,
                                  device=resolve_device(args.device), config_record=record,
                                  base_seed=args.seed)
    last = frame[frame["step"] == frame["step"].max()]
    job_summary().update(n=args.n, seed=args.series_seed, width=args.width,
                         checkpoints=int(frame["step"].nunique()),
                         **{f"memorised_{r.weights}": float(r.memorised_fraction) for r in last.itertuples()})


def _table(args: argparse.Namespace) -> None:
    from diffusion_regimes.memorisation import gather

    ensure_writable(args.out, args.times)
    _, times = gather(args.series, table_out=args.out, times_out=args.times, spec=_spec(args), seed=args.seed)
    job_summary().update(series=len(args.series), **{
        f"gamma_{w}": float(times.loc[times["weights"] == w, "gamma"].iloc[0])
        for w in sorted(set(times["weights"]))})


def _figures(args: argparse.Namespace) -> None:
    from diffusion_regimes.plots.memorisation import memorisation_figures

    ensure_writable(args.out)
    memorisation_figures(table=args.table, times=args.times, dataset=args.dataset, out=args.out,
                         seed=args.seed)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("memorisation-series",
                       help="train one memorisation series (width, n, seed) and measure every checkpoint")
    add_spec_arguments(p)
    p.add_argument("--dataset", required=True, help="subset name (a key of `datasets:`)")
    p.add_argument("--subset", required=True, type=Path, help="prepared subset file (subset.pt)")
    p.add_argument("--classifier", required=True, type=Path, help="classifier checkpoint of the subset")
    p.add_argument("--n", type=int, required=True, help="training-set size (the first n images)")
    p.add_argument("--width", type=int, required=True, help="base channels of the UNet")
    p.add_argument("--series-seed", type=int, required=True, help="training seed (memorisation.seeds)")
    p.add_argument("--run-dir", required=True, type=Path,
                   help="folder of checkpoints and cached measurements (kept when the job fails)")
    p.add_argument("--out", required=True, type=Path, help="series table (.csv)")
    p.set_defaults(func=_series, uses_network=True)

    p = sub.add_parser("memorisation-table", help="gather the series and fit tau_mem, tau_gen and exponents")
    add_spec_arguments(p)
    p.add_argument("--series", nargs="+", required=True, help="series tables")
    p.add_argument("--out", required=True, type=Path, help="results/tables/memorisation.csv")
    p.add_argument("--times", required=True, type=Path, help="results/tables/memorisation_times.csv")
    p.set_defaults(func=_table)

    p = sub.add_parser("memorisation-figures", help="figures of the memorisation stage for one dataset")
    add_spec_arguments(p)
    p.add_argument("--dataset", required=True)
    p.add_argument("--table", required=True, type=Path)
    p.add_argument("--times", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path, help="figure (.pdf; .png beside it)")
    p.set_defaults(func=_figures)
