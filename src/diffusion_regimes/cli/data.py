"""``prepare-subset``, ``spectrum`` and ``spectra-table``: the data layer and Table 1
(docs/science.md 2, 4)."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import pandas as pd
import torch

from diffusion_regimes.cli.common import add_spec_arguments, ensure_writable, job_summary, spec_record
from diffusion_regimes.config import from_json
from diffusion_regimes.errors import DataError
from diffusion_regimes.seeds import derived_seed

log = logging.getLogger(__name__)


def _prepare(args: argparse.Namespace) -> int:
    from diffusion_regimes.data import DatasetSpec, prepare_subset

    spec = from_json(DatasetSpec, args.spec, where=f"datasets.{args.name}")
    ensure_writable(args.output)
    subset = prepare_subset(spec, name=args.name)
    subset.save(args.output)
    job_summary().update(dataset=args.name, images=subset.n, d=subset.d)
    log.info("%s: %d images of %s, shape %s, channel means %s", args.name, subset.n, subset.classes,
             subset.shape, subset.channel_means.tolist())
    return 0


def _spectrum(args: argparse.Namespace) -> int:
    from diffusion_regimes.data import PreparedSubset
    from diffusion_regimes.plots import save_figure
    from diffusion_regimes.plots.spectrum import scree_figure
    from diffusion_regimes.runtime import set_threads
    from diffusion_regimes.spectrum import SpectraOptions, subset_spectrum

    set_threads(args.threads)
    options = from_json(SpectraOptions, args.spec, where="spectra")
    subset = PreparedSubset.load(args.subset)
    seed = derived_seed(args.seed, "spectrum", subset.dataset)
    generator = torch.Generator().manual_seed(seed)
    result = subset_spectrum(subset.images, options=options, generator=generator)
    spec = subset.metadata.get("spec", {})
    row = {
        "dataset": subset.dataset,
        "reference": spec.get("reference") or subset.dataset,
        "classes": "/".join(subset.classes),
        "n": subset.n,
        "channels": subset.shape[0],
        "d_first_channel": subset.shape[1] * subset.shape[2],
        "d": subset.d,
        "lambda_first_channel": result.lambda_first_channel,
        "lambda_first_channel_se": result.se_first_channel,
        "t_s_first_channel": result.t_s_first_channel,
        "lambda_all_channels": result.lambda_all_channels,
        "lambda_all_channels_se": result.se_all_channels,
        "t_s_all_channels": result.t_s_all_channels,
        "top_first_channel": result.top_first.tolist(),
        "top_all_channels": result.top_all.tolist(),
    }
    from diffusion_regimes.provenance import write_json

    write_json(args.output, row, config=spec_record(args.spec), seed=seed)
    job_summary().update({
        "dataset": subset.dataset, "n": subset.n, "d": subset.d,
        "Λ (first channel)": f"{result.lambda_first_channel:.4g} ± {result.se_first_channel:.2g}",
        "t_S": result.t_s_first_channel,
        "Λ (all channels)": f"{result.lambda_all_channels:.4g} ± {result.se_all_channels:.2g}",
    })
    fig = scree_figure(row)
    save_figure(fig, args.figure, config={"spectra": spec_record(args.spec), "dataset": spec}, seed=seed)
    return 0


def _table(args: argparse.Namespace) -> int:
    from diffusion_regimes.provenance import write_table

    former = pd.read_csv(args.former, comment="#")
    rows = []
    for path in args.rows:
        row = json.loads(Path(path).read_text())
        row = {k: v for k, v in row.items() if not k.startswith("top_")}
        ref = former[former["dataset"] == row["reference"]]
        paper_lam = float(ref["lambda"].iloc[0]) if len(ref) else float("nan")
        paper_ts = float(ref["t_s"].iloc[0]) if len(ref) else float("nan")
        row.update({
            "paper_lambda": paper_lam,
            "paper_t_s": paper_ts,
            "rel_diff_lambda_first_channel": row["lambda_first_channel"] / paper_lam - 1.0,
            "rel_diff_lambda_all_channels": row["lambda_all_channels"] / paper_lam - 1.0,
            "z_first_channel": (row["lambda_first_channel"] - paper_lam)
            / row["lambda_first_channel_se"] if row["lambda_first_channel_se"] > 0 else float("nan"),
        })
        rows.append(row)
    if not rows:
        raise DataError("no spectra to tabulate: the config's `datasets:` section is empty")
    spec = json.loads(args.spec) if args.spec else None
    write_table(pd.DataFrame(rows), args.output, config=spec, seed=args.seed)
    return 0


def _pairs(args: argparse.Namespace) -> int:
    from diffusion_regimes.data.sources import FASHION_DEBIAN, FASHION_NAMES, fashion_training_split
    from diffusion_regimes.plots import save_figure
    from diffusion_regimes.plots.spectrum import pair_figure
    from diffusion_regimes.provenance import write_table
    from diffusion_regimes.runtime import set_threads
    from diffusion_regimes.spectrum import pair_table

    set_threads(args.threads)
    folder = Path(args.path) if args.path else FASHION_DEBIAN
    ensure_writable(Path(args.output), Path(args.figure))
    images, labels, checksums = fashion_training_split(folder)
    pixels = torch.tensor(images, dtype=torch.float64) / 255.0  # a copy: the IDX buffer is read-only
    table = pair_table(pixels, torch.tensor(labels, dtype=torch.long), FASHION_NAMES)
    record = {"dataset": "fashion-mnist", "folder": str(folder), "split": "train", "files": checksums}
    write_table(table, args.output, config=record, seed=None)
    save_figure(pair_figure(table, dataset="Fashion-MNIST (training split, pixels in [0, 1])"), args.figure,
                config=record, seed=None)
    best = table.loc[table["sign_separation"].idxmax()]
    worst = table.loc[table["sign_separation"].idxmin()]
    job_summary().update(pairs=len(table), best=f"{best['class_a']}/{best['class_b']}",
                         best_separation=float(best["sign_separation"]),
                         worst=f"{worst['class_a']}/{worst['class_b']}",
                         worst_separation=float(worst["sign_separation"]))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("prepare-subset", help="read raw data, write results/data/<name>/subset.pt + .json")
    add_spec_arguments(p)
    p.add_argument("--name", required=True, help="subset name (key under datasets:)")
    p.add_argument("--output", required=True, help="subset .pt path (the .json goes beside it)")
    p.set_defaults(func=_prepare)

    p = sub.add_parser("spectrum", help="Λ and t_S of one prepared subset (both conventions) + scree plot")
    add_spec_arguments(p)
    p.add_argument("--subset", required=True, help="prepared subset .pt")
    p.add_argument("--output", required=True, help="JSON row")
    p.add_argument("--figure", required=True, help="scree figure .pdf (a .png is written beside it)")
    p.set_defaults(func=_spectrum)

    p = sub.add_parser("spectra-table", help="collect spectrum rows with the paper's Table 1")
    add_spec_arguments(p)
    p.add_argument("--former", required=True, help="former/table1.csv")
    p.add_argument("--output", required=True, help="results/tables/spectra.csv")
    p.add_argument("rows", nargs="*", help="JSON rows written by `spectrum`")
    p.set_defaults(func=_table)

    p = sub.add_parser("fashion-pairs", help="Λ, λ1/λ2, sign separation, λ_Δ of all Fashion-MNIST pairs")
    p.add_argument("--path", default=None, help="folder of the IDX files (default: the Debian package's)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--output", required=True, help="table .csv (results/tables/fashion_pairs.csv)")
    p.add_argument("--figure", required=True, help="figure .pdf (a .png is written beside it)")
    p.set_defaults(func=_pairs)
