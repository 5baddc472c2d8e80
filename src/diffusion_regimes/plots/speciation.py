"""Figures of the speciation stage: t_S against log d for the Gaussian mixtures, the four-class agreement
curves, and the predictors of t_S against measurement on real pairs."""

from __future__ import annotations

import numpy as np
import pandas as pd

from diffusion_regimes.measures import PHI_SPECIATION_LEVEL
from diffusion_regimes.plots import new_figure

_FAMILY_LABELS = {
    "equal_mean": "equal means, $v_\\pm$ on all $d$ axes",
    "equal_mean_subspace": "equal means, $v_\\pm$ on $k = f d$ axes",
    "mean_separated": "means $\\pm m$ (paper), control",
    "nested_group": "nested: group level",
    "nested_class": "nested: class level (same group)",
}


def _protocol(frame: pd.DataFrame, protocol: str) -> pd.DataFrame:
    """Rows of one measurement protocol (tables written before U-turns were measured hold cloning only)."""
    if "protocol" not in frame.columns:
        return frame if protocol == "cloning" else frame.iloc[:0]
    return frame[frame["protocol"] == protocol]


def gm_figure(curves: pd.DataFrame, times: pd.DataFrame, slopes: pd.DataFrame):
    """Left: measured t_S (0.775 crossing, 95 % interval) against log d per family, cloning (filled) and
    U-turns (open), with the closed-form crossings (lines) and the fitted cloning slope in the legend.
    Middle: phi(t) at the largest d with theory.  Right: the U-turn t_S against the cloning t_S (the exact
    score gives both the same curve, so the points should lie on the identity)."""
    fig, (ax, bx, cx) = new_figure(1, 3, figsize=(15.0, 4.4))
    reduced = times[times["engine"] == "reduced"]
    cloned, turned = _protocol(reduced, "cloning"), _protocol(reduced, "uturn")
    slope_of = _protocol(slopes, "cloning").set_index("family")
    uturn_slope_of = _protocol(slopes, "uturn").set_index("family")
    colors = {family: f"C{i}" for i, family in enumerate(cloned["family"].drop_duplicates())}
    for family, part in cloned.groupby("family", sort=False):
        color = colors[family]
        x = np.log(part["d"].to_numpy(dtype=float))
        y = part["t_S"].to_numpy()
        err = np.stack([y - part["low"].to_numpy(), part["high"].to_numpy() - y])
        label = _FAMILY_LABELS.get(family, family)
        if family in slope_of.index:
            s = slope_of.loc[family]
            label += f": slope {s['slope']:.3f} [{s['low']:.3f}, {s['high']:.3f}]"
        if family in uturn_slope_of.index:
            s = uturn_slope_of.loc[family]
            label += f" (U-turns {s['slope']:.3f})"
        ax.errorbar(x, y, yerr=np.abs(err), fmt="o", ms=4, color=color, capsize=2, label=label)
        ax.plot(x, part["t_s_theory"], color=color, lw=1.0)
    for family, part in turned.groupby("family", sort=False):
        y = part["t_S"].to_numpy()
        err = np.stack([y - part["low"].to_numpy(), part["high"].to_numpy() - y])
        ax.errorbar(np.log(part["d"].to_numpy(dtype=float)) + 0.08, y, yerr=np.abs(err), fmt="s", ms=4,
                    mfc="white", color=colors.get(family, "0.5"), capsize=2)
    full = times[times["engine"] == "full"]
    if len(full):
        ax.plot(
            np.log(full["d"].to_numpy(dtype=float)), full["t_S"], "kx", ms=7, label="full-$d$ engine check"
        )
    ax.plot([], [], color="0.3", lw=1.0, label="closed form (crossing of exact $\\phi$)")
    if len(turned):
        ax.plot([], [], "s", mfc="white", color="0.3", ms=4, label="U-turns (open, shifted right)")
    ax.set_xlabel("$\\log d$")
    ax.set_ylabel("$t_S$ (0.775 crossing)")
    ax.set_title("speciation time against dimension", fontsize=10)
    ax.legend(fontsize=6.5, loc="upper left")
    d_big = reduced["d"].max()
    big = _protocol(curves[(curves["engine"] == "reduced") & (curves["d"] == d_big)], "cloning")
    for family, part in big.groupby("family", sort=False):
        color = colors.get(family, "0.5")
        bx.errorbar(
            part["t"],
            part["phi"],
            yerr=part["stderr"],
            fmt="o",
            ms=2.5,
            color=color,
            capsize=1,
            label=_FAMILY_LABELS.get(family, family),
        )
        bx.plot(part["t"], part["phi_theory"], color=color, lw=1.0)
    bx.axhline(PHI_SPECIATION_LEVEL, color="0.3", ls="--", lw=0.9)
    bx.set_xlabel("$t$")
    bx.set_ylabel("$\\phi(t)$ (same class / same group)")
    bx.set_title(f"cloning curves at $d = {int(d_big)}$ (lines: closed form)", fontsize=10)
    bx.legend(fontsize=7, loc="upper right")
    if len(turned):
        keys = ["family", "d"]
        both = cloned.merge(turned, on=keys, suffixes=("_clone", "_uturn"))
        for family, part in both.groupby("family", sort=False):
            x, y = part["t_S_clone"].to_numpy(), part["t_S_uturn"].to_numpy()
            cx.errorbar(x, y,
                        xerr=np.abs(np.stack([x - part["low_clone"], part["high_clone"] - x])),
                        yerr=np.abs(np.stack([y - part["low_uturn"], part["high_uturn"] - y])),
                        fmt="o", ms=3.5, capsize=1.5, color=colors.get(family, "0.5"),
                        label=_FAMILY_LABELS.get(family, family))
        lo = float(np.nanmin(both[["t_S_clone", "t_S_uturn"]].to_numpy())) - 0.2
        hi = float(np.nanmax(both[["t_S_clone", "t_S_uturn"]].to_numpy())) + 0.2
        cx.plot([lo, hi], [lo, hi], color="0.3", lw=0.9, ls="--", label="identity")
        cx.legend(fontsize=6.5, loc="upper left")
    else:
        cx.text(0.5, 0.5, "no U-turns in this run\n(speciation.gm.uturn_starts = 0)", ha="center",
                va="center", transform=cx.transAxes, fontsize=9)
    cx.set_xlabel("$t_S$ from cloning")
    cx.set_ylabel("$t_S$ from U-turns (return to the start's class)")
    cx.set_title("two protocols, one curve (exact score)", fontsize=10)
    return fig


def groups_figure(curves: pd.DataFrame):
    """Four-class agreement: same group, same class, same class among same-group pairs; points measured
    (exact score), lines the Gaussian-class predictions."""
    fig, ax = new_figure(figsize=(5.8, 4.2))
    for i, (name, label) in enumerate(
        (("group", "same group"), ("class", "same class"), ("within", "same class | same group"))
    ):
        ax.errorbar(
            curves["t"],
            curves[f"phi_{name}"],
            yerr=curves[f"phi_{name}_se"],
            fmt="o",
            ms=3.5,
            color=f"C{i}",
            capsize=2,
            label=f"{label} (exact score)",
        )
        ax.plot(curves["t"], curves[f"pred_{name}"], color=f"C{i}", lw=1.1)
    ax.plot([], [], color="0.3", lw=1.1, label="Gaussian-class prediction")
    ax.axhline(PHI_SPECIATION_LEVEL, color="0.3", ls="--", lw=0.9)
    ax.set_xlabel("branch time $t$")
    ax.set_ylabel("fraction of clone pairs")
    ax.set_title(f"four-class Fashion-MNIST subset ({int(curves['pairs'].iloc[0])} pairs)", fontsize=10)
    ax.legend(fontsize=7.5, loc="upper right")
    return fig


def predictor_figure(table: pd.DataFrame, rms: pd.DataFrame):
    """Predicted t_S against the measured crossing, one panel per predictor, identity line, RMS in the
    title (95 % bootstrap interval over pairs)."""
    from diffusion_regimes.speciation import PREDICTORS

    fig, axes = new_figure(1, len(PREDICTORS), figsize=(4.0 * len(PREDICTORS), 4.0), sharey=True)
    measured = table.dropna(subset=["t_s_crossing"])
    values = measured[["t_s_crossing", *PREDICTORS]].to_numpy(dtype=float)
    lo, hi = (np.nanmin(values) - 0.1, np.nanmax(values) + 0.1) if values.size else (0.0, 2.0)
    for ax, (column, name) in zip(np.atleast_1d(axes), PREDICTORS.items(), strict=True):
        ax.plot([lo, hi], [lo, hi], color="0.5", lw=0.9, label="identity")
        x = measured["t_s_crossing"].to_numpy()
        xerr = np.abs(
            np.stack(
                [x - measured["t_s_crossing_low"].to_numpy(), measured["t_s_crossing_high"].to_numpy() - x]
            )
        )
        ax.errorbar(x, measured[column], xerr=xerr, fmt="o", ms=4, capsize=2, color="C0")
        for row in measured.itertuples():
            ax.annotate(
                f"{row.class_a}/{row.class_b}",
                (row.t_s_crossing, getattr(row, column)),
                fontsize=5.5,
                xytext=(3, 2),
                textcoords="offset points",
            )
        r = rms[(rms["predictor"] == column) & (rms["against"] == "t_s_crossing")]
        title = (
            name
            if r.empty
            else f"{name}: RMS {r['rms'].iloc[0]:.3f} [{r['low'].iloc[0]:.3f}, {r['high'].iloc[0]:.3f}]"
        )
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("measured $t_S$ (exact score, $\\phi = 0.775$)")
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
    np.atleast_1d(axes)[0].set_ylabel("predicted $t_S$")
    return fig
