"""Commands of the speciation stage (docs/science.md, "Speciation as Bayes classification").

``speciation-gm``        equal-mean, mean-separated and nested Gaussian mixtures: phi(t), t_S per d, slopes
``speciation-predict``   Gaussian-class predictions of t_S (and ½ log Λ, ½ log λ_Δ) for class pairs
``speciation-measure``   exact-score cloning t_S of one pair (a prepared subset or a Fashion-MNIST pair)
``speciation-groups``    group- and class-level agreement curves of a four-class Fashion-MNIST subset
``speciation-table``     predictions joined with measurements, RMS per predictor, predicted-vs-measured figure
``speciation-figures``   the Gaussian-mixture figure (t_S against log d, phi curves) and the group figure
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import time
from pathlib import Path

import pandas as pd
import torch

from diffusion_regimes.cli.common import (
    add_spec_arguments,
    ensure_writable,
    job_summary,
    load_subset,
    spec_record,
)
from diffusion_regimes.config import from_json, to_dict
from diffusion_regimes.errors import DataError
from diffusion_regimes.provenance import write_json, write_table
from diffusion_regimes.runtime import set_threads
from diffusion_regimes.seeds import derived_seed

log = logging.getLogger(__name__)


def _section(args: argparse.Namespace):
    from diffusion_regimes.speciation import SpeciationSpec

    return from_json(SpeciationSpec, args.spec, where="speciation")


def _fashion_folder(path: str | None) -> Path:
    from diffusion_regimes.data.sources import FASHION_DEBIAN

    return Path(path) if path else FASHION_DEBIAN


def _gm(args: argparse.Namespace) -> None:
    from diffusion_regimes.speciation import gm_experiment

    spec = _section(args)
    set_threads(args.threads)
    ensure_writable(Path(args.curves), Path(args.times), Path(args.slopes))
    start = time.perf_counter()
    result = gm_experiment(spec.gm, seed=args.seed, progress=True)
    seconds = time.perf_counter() - start
    record = spec_record(args.spec)
    for frame, path in (
        (result.curves, args.curves),
        (result.times, args.times),
        (result.slopes, args.slopes),
    ):
        write_table(frame, path, config=record, seed=args.seed, extra={"wall_seconds": seconds})
    for row in result.slopes.itertuples():
        log.info(
            "%s (%s): slope %.3f [%.3f, %.3f] (theory %.3f, expected %.2f)",
            row.family,
            row.protocol,
            row.slope,
            row.low,
            row.high,
            row.slope_theory,
            row.slope_expected,
        )
    job_summary().update(
        **{f"slope_{row.family}_{row.protocol}": float(row.slope) for row in result.slopes.itertuples()}
    )


def _predict(args: argparse.Namespace) -> None:
    from diffusion_regimes.data.sources import FASHION_NAMES, fashion_training_split
    from diffusion_regimes.speciation import PREDICTOR_COLUMNS, pair_predictions, spectral_columns

    spec = _section(args)
    set_threads(args.threads)
    ensure_writable(Path(args.output), Path(args.curves))
    tables, curves, seconds = [], [], {}
    for entry in args.subset or []:
        name, _, path = entry.partition("=")
        subset = load_subset(path)
        start = time.perf_counter()
        table, curve = pair_predictions(
            subset.images,
            subset.labels,
            list(subset.classes),
            cfg=spec.predictor,
            seed=args.seed,
            source=name,
        )
        seconds[name] = time.perf_counter() - start
        spectral = spectral_columns(subset.images, subset.labels)
        tables.append(table.assign(**spectral))
        curves.append(curve)
    files = {}
    if args.fashion is not None:
        if args.fashion_pairs is None:
            raise DataError("speciation-predict: --fashion needs --fashion-pairs (the spectra stage's table)")
        images, labels, files = fashion_training_split(_fashion_folder(args.fashion))
        pixels = torch.tensor(images, dtype=torch.float64).reshape(len(images), -1) / 255.0
        y = torch.tensor(labels, dtype=torch.long)
        start = time.perf_counter()
        table, curve = pair_predictions(
            pixels, y, list(FASHION_NAMES), cfg=spec.predictor, seed=args.seed, source="fashion"
        )
        seconds["fashion"] = time.perf_counter() - start
        # ½ log Λ, ½ log λ_Δ, λ₁/λ₂ and the separation of every pair: the spectra stage's pair table
        spectral = _read(args.fashion_pairs).drop(columns=["label_a", "label_b", "n"])
        tables.append(table.merge(spectral, on=["class_a", "class_b"], validate="one_to_one"))
        curves.append(curve)
    if not tables:
        raise DataError("speciation-predict: nothing to predict; give --subset NAME=PATH and/or --fashion")
    frame = pd.concat(tables, ignore_index=True)
    columns = [
        *PREDICTOR_COLUMNS,
        "ratio_12",
        "sign_separation",
        "Lambda",
        "lambda_delta",
        "t_s_lambda",
        "t_s_delta",
    ]
    extra = {"predictor_seconds": seconds, "fashion_files": files}
    write_table(frame[columns], args.output, config=spec_record(args.spec), seed=args.seed, extra=extra)
    write_table(
        pd.concat(curves, ignore_index=True),
        args.curves,
        config=spec_record(args.spec),
        seed=args.seed,
        extra=extra,
    )
    job_summary().update(pairs=len(frame), **{f"seconds_{k}": v for k, v in seconds.items()})


def _measure(args: argparse.Namespace) -> None:
    from diffusion_regimes.speciation import fashion_class_set, measure_classes, measured_row

    spec = _section(args)
    set_threads(args.threads)
    ensure_writable(Path(args.output), Path(args.branches))
    if args.subset:
        subset = load_subset(args.subset)
        images, labels, names = subset.images, subset.labels, list(subset.classes)
        source = args.source
    else:
        if not args.pair:
            raise DataError(
                "speciation-measure: give --subset PATH or --pair CLASS_A CLASS_B (Fashion-MNIST)"
            )
        names = list(args.pair)
        images, labels = fashion_class_set(
            _fashion_folder(args.fashion), names, per_class=spec.measure.n // 2, seed=0
        )
        source = "fashion"
    seed = derived_seed(args.seed, "speciation-measure", source, *names)
    chunk_dir = None
    if args.chunk_dir:
        # the folder is named after everything that fixes the chunks: a changed setting starts afresh
        key = json.dumps(
            {"measure": to_dict(spec.measure), "seed": seed, "n": int(images.shape[0])}, sort_keys=True
        )
        chunk_dir = Path(args.chunk_dir) / hashlib.sha256(key.encode()).hexdigest()[:16]
    result = measure_classes(images, labels, cfg=spec.measure, seed=seed, chunk_dir=chunk_dir, progress=True)
    row = measured_row(result, source=source, class_a=names[0], class_b=names[1], n=int(images.shape[0]))
    record = spec_record(args.spec)
    write_table(
        result.branch_table().assign(source=source, class_a=names[0], class_b=names[1]),
        args.branches,
        config=record,
        seed=seed,
    )
    write_table(pd.DataFrame([row]), args.output, config=record, seed=seed)
    log.info(
        "%s %s/%s: crossing %.3f [%.3f, %.3f], fit %.3f [%.3f, %.3f] (%.0f s)",
        source,
        *names,
        row["t_s_crossing"],
        row["t_s_crossing_low"],
        row["t_s_crossing_high"],
        row["t_s_fit"],
        row["t_s_fit_low"],
        row["t_s_fit_high"],
        row["sweep_seconds"],
    )
    job_summary().update(
        pair=f"{names[0]}/{names[1]}", t_s_crossing=float(row["t_s_crossing"]), t_s_fit=float(row["t_s_fit"])
    )


def _groups(args: argparse.Namespace) -> None:
    from diffusion_regimes.speciation import (
        fashion_class_set,
        group_curves,
        measure_groups,
        predicted_group_curves,
    )

    spec = _section(args)
    set_threads(args.threads)
    ensure_writable(Path(args.output), Path(args.summary))
    fc = spec.four_class
    names = [name for group in fc.groups for name in group]
    groups = [g for g, group in enumerate(fc.groups) for _ in group]
    images, labels = fashion_class_set(
        _fashion_folder(args.fashion), names, per_class=fc.per_class, seed=fc.seed
    )
    seed = derived_seed(args.seed, "speciation-groups", *names)
    start = time.perf_counter()
    times, same_group, same_class = measure_groups(
        images, labels, groups=groups, cfg=spec.measure, seed=seed, progress=True
    )
    predicted = predicted_group_curves(
        images, labels, groups=groups, times=times, cfg=spec.predictor, seed=seed
    )
    frame, crossings = group_curves(
        times,
        same_group,
        same_class,
        predicted=predicted,
        n_boot=spec.measure.n_boot,
        generator=torch.Generator().manual_seed(derived_seed(seed, "bootstrap")),
    )
    from diffusion_regimes.measures import PHI_SPECIATION_LEVEL, crossing_time

    fine = predicted_group_curves(
        images, labels, groups=groups, times=spec.predictor.times(), cfg=spec.predictor, seed=seed
    )
    summary = {
        "groups": [list(g) for g in fc.groups],
        "per_class": fc.per_class,
        "pairs": spec.measure.pairs,
        "measured": {name: {"t_S": c[0], "low": c[1], "high": c[2]} for name, c in crossings.items()},
        "predicted": {
            name: crossing_time(spec.predictor.times(), fine[f"pred_{name}"], PHI_SPECIATION_LEVEL)
            for name in ("group", "within")
        },
        "seconds": time.perf_counter() - start,
    }
    record = spec_record(args.spec)
    write_table(frame, args.output, config=record, seed=seed)
    write_json(args.summary, summary, config=record, seed=seed)
    job_summary().update(t_group=float(crossings["group"][0]), t_within=float(crossings["within"][0]))


def _read(path: str) -> pd.DataFrame:
    if not Path(path).is_file():
        raise DataError(f"table not found: {path} (written by an earlier speciation-* job)")
    # class names stay text (MNIST classes "1", "8" would otherwise read as numbers and not join)
    return pd.read_csv(path, dtype={"class_a": str, "class_b": str, "source": str})


def _table(args: argparse.Namespace) -> None:
    from diffusion_regimes.plots import save_figure
    from diffusion_regimes.plots.speciation import predictor_figure
    from diffusion_regimes.speciation import predictor_table, rms_table

    spec = _section(args)
    ensure_writable(Path(args.output), Path(args.rms), Path(args.figure))
    measured = (
        pd.concat([_read(p) for p in args.measured], ignore_index=True)
        if args.measured
        else pd.DataFrame(columns=["source", "class_a", "class_b"])
    )
    table = predictor_table(_read(args.predictions), measured)
    rms = rms_table(table, n_boot=spec.measure.n_boot, seed=args.seed)
    record = spec_record(args.spec)
    write_table(table, args.output, config=record, seed=args.seed)
    write_table(rms, args.rms, config=record, seed=args.seed)
    save_figure(predictor_figure(table, rms), args.figure, config=record, seed=args.seed)
    for row in rms.itertuples():
        log.info(
            "RMS %s vs %s over %d pairs: %.3f [%.3f, %.3f]",
            row.predictor,
            row.against,
            row.pairs,
            row.rms,
            row.low,
            row.high,
        )
    job_summary().update(measured=int(table["t_s_crossing"].notna().sum()), predicted=len(table))


def _figures(args: argparse.Namespace) -> None:
    from diffusion_regimes.plots import save_figure
    from diffusion_regimes.plots.speciation import gm_figure, groups_figure

    record = spec_record(args.spec)
    gm = (args.curves, args.times, args.slopes)
    if any(gm) and not all(gm):
        raise DataError("speciation-figures: give --curves, --times and --slopes together (the GM figure)")
    if all(gm):
        if not args.out_gm:
            raise DataError("speciation-figures: --out-gm is needed with the GM tables")
        figure = gm_figure(_read(args.curves), _read(args.times), _read(args.slopes))
        save_figure(figure, args.out_gm, config=record, seed=args.seed)
    if args.groups:
        if not args.out_groups:
            raise DataError("speciation-figures: --out-groups is needed with --groups")
        save_figure(groups_figure(_read(args.groups)), args.out_groups, config=record, seed=args.seed)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "speciation-gm", help="equal-mean / mean-separated / nested mixtures: t_S against log d"
    )
    add_spec_arguments(p)
    for name in ("curves", "times", "slopes"):
        p.add_argument(f"--{name}", required=True, help=f"{name} table (.csv)")
    p.set_defaults(func=_gm)

    p = sub.add_parser("speciation-predict", help="Gaussian-class predictions of t_S for class pairs")
    add_spec_arguments(p)
    p.add_argument("--subset", action="append", help="NAME=PATH of a prepared two-class subset (repeatable)")
    p.add_argument("--fashion", default=None, help="folder of the Fashion-MNIST IDX files: all 45 pairs")
    p.add_argument("--fashion-pairs", default=None, help="results/tables/fashion_pairs.csv (with --fashion)")
    p.add_argument("--output", required=True, help="predictions table (.csv)")
    p.add_argument("--curves", required=True, help="predicted phi(t) curves (.csv)")
    p.set_defaults(func=_predict)

    p = sub.add_parser("speciation-measure", help="exact-score cloning t_S of one class pair")
    add_spec_arguments(p)
    p.add_argument("--subset", default=None, help="prepared subset .pt (its two classes, all its images)")
    p.add_argument("--source", default=None, help="the subset's name (the table's `source`)")
    p.add_argument(
        "--pair", nargs=2, default=None, metavar=("CLASS_A", "CLASS_B"), help="a Fashion-MNIST pair"
    )
    p.add_argument("--fashion", default=None, help="folder of the Fashion-MNIST IDX files")
    p.add_argument("--chunk-dir", default=None, help="resumable chunks of the sweep")
    p.add_argument("--output", required=True, help="one-row table (.csv)")
    p.add_argument("--branches", required=True, help="phi per branch time (.csv)")
    p.set_defaults(func=_measure, gpu_capable=False)

    p = sub.add_parser(
        "speciation-groups", help="group and class agreement of a four-class Fashion-MNIST set"
    )
    add_spec_arguments(p)
    p.add_argument("--fashion", default=None, help="folder of the Fashion-MNIST IDX files")
    p.add_argument("--output", required=True, help="curves (.csv)")
    p.add_argument("--summary", required=True, help="crossings (.json)")
    p.set_defaults(func=_groups)

    p = sub.add_parser("speciation-table", help="predictors against measurement: table, RMS, figure")
    add_spec_arguments(p)
    p.add_argument("--predictions", required=True)
    p.add_argument("--measured", nargs="*", default=[])
    p.add_argument("--output", required=True, help="results/tables/speciation_predictors.csv")
    p.add_argument("--rms", required=True, help="RMS per predictor (.csv)")
    p.add_argument(
        "--figure", required=True, help="predicted vs measured (.pdf; a .png is written beside it)"
    )
    p.set_defaults(func=_table)

    p = sub.add_parser("speciation-figures", help="Gaussian-mixture and four-class figures")
    add_spec_arguments(p)
    for name in ("curves", "times", "slopes"):
        p.add_argument(f"--{name}", default=None, help=f"GM {name} table (.csv)")
    p.add_argument("--groups", default=None, help="four-class curves (.csv)")
    p.add_argument("--out-gm", default=None)
    p.add_argument("--out-groups", default=None)
    p.set_defaults(func=_figures)
