"""Figures of the cloning experiment on real data (paper Figs. 4 and 5 style) and the image strip."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from diffusion_regimes.plots import new_figure

MODEL_STYLE = {"exact": dict(marker="o", ls="-"), "unet": dict(marker="s", ls="--")}
"""Marker and line of each model, so the ideal and the learned model read apart on shared axes."""

MODEL_NAME = {"exact": "ideal (exact score)", "unet": "learned (UNet)"}


def _style(model: str) -> dict:
    return MODEL_STYLE.get(model, dict(marker="^", ls=":"))


def _label(model: str, n: int) -> str:
    return f"{MODEL_NAME.get(model, model)}, n = {n}"


def _marker_kwargs(colour: str, quality_ok: bool) -> dict:
    """Filled markers for rows that pass the quality gate, hollow ones for flagged rows."""
    return dict(color=colour, mfc=colour if quality_ok else "none", mec=colour)


def phi_figure(curves: Sequence[tuple[str, int, pd.DataFrame, pd.Series]], *, t_s_theory: float,
               k_s_theory: int):
    """phi(t) of every (model, n, branch table, regimes row), on two axes side by side.

    Left: against t / t_S with the theory t_S = 1/2 log Lambda at 1; the maximum-likelihood fit of each
    model (Gaussian-mixture family) as a line, and its t_S with the 95 % interval as a horizontal bar at
    phi = 0.775.  Right: the same points against the DDPM step ratio k / k_S (the paper's Fig. 4 axis).
    Hollow markers: the row failed the quality gate (see the ``quality`` column of regimes.csv).
    """
    fig, (ax, ax_k) = new_figure(1, 2, figsize=(10.0, 4.0), sharey=True)
    for i, (model, n, table, row) in enumerate(curves):
        colour = f"C{i}"
        ok = bool(row.get("quality_ok", True))
        flag = "" if ok else " (flagged)"
        t_fit, low, high = (float(row.get(key, np.nan)) for key in ("t_s_fit", "t_s_fit_low", "t_s_fit_high"))
        style = _style(model)
        ax.errorbar(table["t"] / t_s_theory, table["phi"], yerr=table["phi_se"], ms=4, capsize=2, ls="none",
                    marker=style["marker"], label=_label(model, n) + flag, **_marker_kwargs(colour, ok))
        if "phi_fit" in table and np.isfinite(t_fit):
            ax.plot(table["t"] / t_s_theory, table["phi_fit"], color=colour, ls=style["ls"], lw=1)
            ax.errorbar([t_fit / t_s_theory], [0.775],
                        xerr=[[max(0.0, (t_fit - low) / t_s_theory)],
                              [max(0.0, (high - t_fit) / t_s_theory)]],
                        marker="D", ms=6, capsize=3, lw=1.5, color=colour, mfc="white" if not ok else colour,
                        label=rf"  fitted $t_S$ = {t_fit:.2f} [{low:.2f}, {high:.2f}]")
        ax_k.errorbar(table["k"] / k_s_theory, table["phi"], yerr=table["phi_se"], ms=4, capsize=2,
                      ls=style["ls"], lw=0.8, marker=style["marker"], **_marker_kwargs(colour, ok))
    ax.axvline(1.0, color="k", ls="--", lw=1,
               label=rf"theory $t_S = \frac{{1}}{{2}}\log\Lambda$ = {t_s_theory:.2f}")
    for axis in (ax, ax_k):
        axis.axhline(0.775, color="grey", ls=":", lw=1)
        axis.axhline(0.5, color="grey", ls="-", lw=0.5)
    ax_k.axvline(1.0, color="k", ls="--", lw=1)
    ax.set_xlabel(r"branch time $t / t_S$ (theory $t_S$)")
    ax_k.set_xlabel(rf"DDPM step ratio $k / k_S$ ($k_S$ = {k_s_theory}, the paper's Fig. 4 axis)")
    ax.set_ylabel(r"cloning probability $\phi(t)$ (same class)")
    ax.set_ylim(0.3, 1.05)
    ax.legend(fontsize=7, loc="lower left")
    ax.set_title(r"lines: maximum-likelihood fits; dotted: $\phi = 0.775$", fontsize=8)
    return fig


def collapse_figure(*, curves: Sequence[tuple[str, int, pd.DataFrame, np.ndarray, pd.Series]],
                    entropy: pd.DataFrame | None, t_c_entropy: float, title: str):
    """phi_C(t) and the t̂_C histograms of every (model, n, branch table, t̂_C per trajectory, regimes row),
    with f^e(t)/alpha and the t_C it implies, on a shared time axis (paper Fig. 5 style)."""
    fig, (top, bottom) = new_figure(2, 1, figsize=(5.8, 5.8), sharex=True)
    if entropy is not None:
        yerr = entropy["f_stderr"] / entropy["alpha"] if "f_stderr" in entropy else None
        top.errorbar(entropy["t"], entropy["f_over_alpha"], yerr=yerr, fmt="k.-", ms=3, lw=1, capsize=2,
                     label=r"$f^e(t)/\alpha$ (training set)")
    if np.isfinite(t_c_entropy):
        for ax in (top, bottom):
            ax.axvline(t_c_entropy, color="k", ls="--", lw=1,
                       label=rf"$t_C$ from $f^e$ = {t_c_entropy:.2f}" if ax is top else None)
    bins = None
    for i, (model, n, table, t_collapse, row) in enumerate(curves):
        colour = f"C{i}"
        ok = bool(row.get("quality_ok", True))
        style = _style(model)
        top.errorbar(table["t"], table["phi_c"], yerr=table["phi_c_se"], ms=4, capsize=2, ls="none",
                     marker=style["marker"], label=r"$\phi_C(t)$, " + _label(model, n) + ("" if ok else
                                                                                      " (flagged)"),
                     **_marker_kwargs(colour, ok))
        t_fit = float(row.get("t_c_phi_c_fit", np.nan))
        if "phi_c_fit" in table and np.isfinite(t_fit):
            top.plot(table["t"], table["phi_c_fit"], color=colour, ls=style["ls"], lw=1,
                     label=rf"  fit: $t_C$ = {t_fit:.2f} [{row['t_c_phi_c_fit_low']:.2f}, "
                           rf"{row['t_c_phi_c_fit_high']:.2f}]")
        if bins is None:
            hi = max(float(np.max(t_collapse)) if len(t_collapse) else 1.0, float(table["t"].max()))
            bins = np.linspace(0.0, hi, 31)
        bottom.hist(t_collapse, bins=bins, histtype="step", lw=1.5, color=colour,
                    label=rf"{MODEL_NAME.get(model, model)}: mean $\hat t_C$ = {np.mean(t_collapse):.2f}")
        bottom.axvline(float(np.mean(t_collapse)), color=colour, lw=2, ls=style["ls"])
    top.axhline(0.5, color="grey", ls=":", lw=1)
    top.set_ylabel(r"$\phi_C(t)$ and $f^e(t)/\alpha$")
    top.set_ylim(-0.05, 1.1)
    top.set_title(title, fontsize=9)
    top.legend(fontsize=6.5)
    bottom.set_xlabel(r"time $t$")
    bottom.set_ylabel(r"trajectories per $\hat t_C$ bin")
    bottom.legend(fontsize=7)
    return fig


def neighbours_figure(panels: Sequence[tuple[str, dict]], *, training: torch.Tensor, to_pixels,
                      rows: int = 6):
    """Generated samples at t = 0 beside their nearest and second-nearest training images (paper SI style).

    ``panels``: ``(title, record)`` per model, ``record`` as written by ``regimes-clone`` in samples.pt:
    ``samples (N, C, H, W)``, ``neighbours (N, 2)`` training indices, ``memorisation_ratio (N,)``.
    ``training``: ``(n, C, H, W)`` the centred training set; ``to_pixels`` maps it back to [0, 1].
    Each row is sample | 1st | 2nd nearest with the ratio d_1/d_2 (memorised below 1/3) printed beside it.
    """
    from diffusion_regimes.measures import MEMORISED_RATIO

    rows = min([rows] + [int(rec["samples"].shape[0]) for _, rec in panels])
    cols = 3 * len(panels)
    fig, axes = new_figure(rows, cols, figsize=(1.15 * cols + 0.4, 1.15 * rows + 0.6), squeeze=False)
    for p, (title, rec) in enumerate(panels):
        for r in range(rows):
            idx = rec["neighbours"][r]
            images = [rec["samples"][r], training[int(idx[0])], training[int(idx[1])]]
            ratio = float(rec["memorisation_ratio"][r])
            heads = ("sample", "1st nearest", "2nd nearest")
            for c, (img, head) in enumerate(zip(images, heads, strict=True)):
                ax = axes[r, 3 * p + c]
                ax.set_xticks([])
                ax.set_yticks([])
                ax.grid(False)
                pix = to_pixels(img[None].float())[0].clamp(0, 1).permute(1, 2, 0)
                ax.imshow(pix.squeeze(-1).numpy(), cmap="gray", vmin=0, vmax=1)
                if r == 0:
                    ax.set_title(f"{title}\n{head}" if c == 1 else head, fontsize=7)
                if c == 0:
                    copy = "copy" if ratio < MEMORISED_RATIO else "new"
                    ax.set_ylabel(f"$d_1/d_2$ = {ratio:.2f}\n({copy})", fontsize=7)
    return fig


def strip_figure(strip: Sequence[tuple[int, float, torch.Tensor]], *, to_pixels, branch_time: float):
    """Pair 0 along the sweep: the trunk (top row) and the clone branched at ``branch_time`` (bottom row).

    ``strip``: ``(k, t, rows)`` with ``rows[0]`` the trunk and ``rows[1:]`` the clones alive at ``t``
    (in branch order: the clone from the largest branch time first, the one shown).  ``to_pixels`` maps
    centred images ``(B, C, H, W)`` back to ``[0, 1]`` pixels.  Before the branch time the clone row is
    empty; the first column after it carries a red frame.
    """
    fig, axes = new_figure(2, len(strip), figsize=(1.3 * len(strip) + 0.8, 3.2), squeeze=False)
    marked = False
    for j, (k, t, rows) in enumerate(strip):
        for r in (0, 1):
            ax = axes[r, j]
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
            if r == 1 and rows.shape[0] < 2:
                for spine in ax.spines.values():
                    spine.set_visible(False)
                ax.text(0.5, 0.5, "not yet\nbranched", ha="center", va="center", fontsize=7, color="grey",
                        transform=ax.transAxes)
            else:
                img = to_pixels(rows[0 if r == 0 else 1][None].float())[0].clamp(0, 1)
                ax.imshow(img.permute(1, 2, 0).squeeze(-1).numpy(), cmap="gray", vmin=0, vmax=1)
                if r == 1 and not marked:
                    marked = True
                    for spine in ax.spines.values():
                        spine.set_visible(True)
                        spine.set_edgecolor("red")
                        spine.set_linewidth(2)
            if r == 0:
                ax.set_title(f"t = {max(t, 0.0) + 0.0:.2f}\nk = {k}", fontsize=8)  # + 0.0: no "-0.00"
    axes[0, 0].set_ylabel("trunk", fontsize=8)
    axes[1, 0].set_ylabel(f"clone branched\nat t = {branch_time:.2f}", fontsize=8)
    fig.suptitle("one cloned pair: shared history down to the branch time (red frame: first image after "
                 "it), independent noise below", fontsize=8)
    return fig


def _interval(values: pd.Series, low: pd.Series, high: pd.Series) -> np.ndarray:
    """Asymmetric error bars ``(2, N)`` from an interval (0 where an end is missing)."""
    return np.nan_to_num(np.vstack([values - low, high - values]).clip(min=0.0))


def law_figure(table: pd.DataFrame, *, title: str):
    """The collapse law on real data (one row of regimes_law.csv per cell).

    Left: the sampled t_C (logistic fit of φ_C, circles, with its interval; mean t̂_C ± SE, squares)
    against the t_C the excess entropy of the training set predicts, log-log, with the identity line;
    one colour per resolution, marker size growing with n.  Right: all three against α = log(n)/d.
    """
    fig, (ax, ax_a) = new_figure(1, 2, figsize=(10.5, 4.2))
    for i, (side, rows) in enumerate(table.sort_values("n").groupby("resolution", sort=True)):
        colour = f"C{i}"
        entropy = rows["t_c_entropy"]
        x_err = _interval(entropy, rows["t_c_entropy_low"], rows["t_c_entropy_high"])
        ax.errorbar(entropy, rows["t_c_phi_c_fit"], xerr=x_err,
                    yerr=_interval(rows["t_c_phi_c_fit"], rows["t_c_phi_c_fit_low"],
                                   rows["t_c_phi_c_fit_high"]),
                    marker="o", ls="none", ms=5, capsize=2, color=colour,
                    label=rf"{side}$\times${side}: $\varphi_C$ fit")
        ax.errorbar(entropy, rows["t_c_hat_mean"], yerr=rows["t_c_hat_se"], marker="s", ls="none", ms=4,
                    capsize=2, color=colour, mfc="none", label=rf"{side}$\times${side}: mean $\hat t_C$")
        ax_a.plot(rows["alpha"], rows["t_c_entropy"], color=colour, ls="-", marker="^", ms=4,
                  label=rf"{side}$\times${side}: $f^e$")
        ax_a.errorbar(rows["alpha"], rows["t_c_phi_c_fit"],
                      yerr=_interval(rows["t_c_phi_c_fit"], rows["t_c_phi_c_fit_low"],
                                     rows["t_c_phi_c_fit_high"]),
                      color=colour, ls="--", marker="o", ms=4, capsize=2,
                      label=rf"{side}$\times${side}: $\varphi_C$ fit")
        for _, r in rows.iterrows():
            ax.annotate(f"{int(r['n'])}", (r["t_c_entropy"], r["t_c_phi_c_fit"]), fontsize=6,
                        xytext=(3, -7), textcoords="offset points", color=colour)
    finite = pd.concat([table["t_c_entropy"], table["t_c_phi_c_fit"], table["t_c_hat_mean"]])
    finite = finite[np.isfinite(finite) & (finite > 0)]
    if not finite.empty:
        lo, hi = float(finite.min()) / 1.5, float(finite.max()) * 1.5
        ax.plot([lo, hi], [lo, hi], color="k", lw=1, ls=":", label="identity")
    ax.set(xscale="log", yscale="log", xlabel=r"$t_C$ predicted by $f^e$ of the training set",
           ylabel=r"$t_C$ sampled with the exact score", title=f"{title}: sampled vs predicted $t_C$")
    ax_a.set(xscale="log", yscale="log", xlabel=r"$\alpha = \log n / d$", ylabel=r"$t_C$",
             title=r"$t_C$ against $\alpha$ (labels: n)")
    ax.legend(fontsize=6, ncol=2)
    ax_a.legend(fontsize=6, ncol=2)
    return fig


SAMPLER_STYLE = {"ddpm": "-", "euler_maruyama": "--", "heun": ":"}
SAMPLER_NAME = {"ddpm": "DDPM ancestral", "euler_maruyama": "Euler-Maruyama SDE", "heun": "Heun ODE"}


def uturn_figure(table: pd.DataFrame, *, title: str):
    """U-turn curves of one dataset: one column per (model, n); top row the probability that the end
    image keeps the class of x₀, bottom row the probability that it returns to x₀ (training starts) or
    copies some training image (held-out starts, dotted grey).  Line style: the sampler; colour: the kind
    of start.  Vertical lines: the theory t_S (top) and the f^e t_C (bottom)."""
    groups = list(table.sort_values(["model", "n"]).groupby(["model", "n"], sort=False))
    fig, axes = new_figure(2, len(groups), figsize=(4.2 * len(groups), 6.4), squeeze=False, sharex=True)
    for j, ((model, n), rows) in enumerate(groups):
        top, bottom = axes[0][j], axes[1][j]
        for (sampler, kind), curve in rows.groupby(["sampler", "starts_from"], sort=False):
            colour = "C0" if kind == "training" else "C1"
            ls = SAMPLER_STYLE.get(sampler, "-.")
            label = f"{SAMPLER_NAME.get(sampler, sampler)}, {kind.replace('_', '-')} starts"
            top.errorbar(curve["t"], curve["same_class"], yerr=curve["same_class_se"], color=colour, ls=ls,
                         marker="o", ms=3, capsize=2, lw=1, label=label)
            if kind == "training":
                bottom.errorbar(curve["t"], curve["returned"], yerr=curve["returned_se"], color=colour, ls=ls,
                                marker="o", ms=3, capsize=2, lw=1, label=f"{label}: returns to $x_0$")
            else:
                bottom.plot(curve["t"], curve["memorised"], color="0.5", ls=ls, marker=".", lw=1,
                            label=f"{label}: copies a training image")
        first = rows.iloc[0]
        top.axhline(float(first["class_prior"]), color="0.6", lw=0.8, ls="-.", label="class prior")
        top.axvline(float(first["t_s_theory"]), color="k", ls="--", lw=1, label=r"theory $t_S$")
        if np.isfinite(first["t_c_entropy"]):
            bottom.axvline(float(first["t_c_entropy"]), color="k", ls="--", lw=1, label=r"$t_C$ from $f^e$")
        top.set(xscale="log", ylim=(0.3, 1.05), ylabel="P(class of end = class of $x_0$)",
                title=f"{title}: {MODEL_NAME.get(model, model)}, n = {int(n)}")
        bottom.set(xscale="log", ylim=(-0.05, 1.05), xlabel="U-turn time t", ylabel="P(end = $x_0$)")
        top.legend(fontsize=6)
        bottom.legend(fontsize=6)
    return fig


def samplers_figure(rows: pd.DataFrame, uturns: pd.DataFrame, *, title: str):
    """Does the sampler matter?  Per (model, sampler) at the whole subset: mean t̂_C ± SE, the memorised
    fraction, and the U-turn class-curve midpoint (training starts) against the theory t_S; fitted t_S
    of the stochastic samplers with its interval."""
    n_top = rows.groupby("model")["n"].transform("max")
    top = rows[rows["n"] == n_top].copy()
    fig, (ax_c, ax_m, ax_s) = new_figure(1, 3, figsize=(13.0, 4.0))
    short = {"ddpm": "DDPM", "euler_maruyama": "E-M SDE", "heun": "Heun ODE"}
    labels = [f"{MODEL_NAME.get(r.model, r.model).split(' ')[0]}\n{short.get(r.sampler, r.sampler)}"
              for r in top.itertuples()]
    x = np.arange(len(top))
    colours = [f"C{0 if m == 'exact' else 1}" for m in top["model"]]
    ax_c.bar(x, top["t_c_hat_mean"], yerr=top["t_c_hat_se"], color=colours, capsize=3)
    ax_c.set(ylabel=r"mean $\hat t_C$ (nearest-neighbour tracking)", title=f"{title}: collapse time")
    ax_m.bar(x, top["memorised_fraction"], color=colours)
    ax_m.set(ylabel="memorised fraction of samples", ylim=(0, 1.05), title="memorisation")
    fit = top["t_s_fit"]
    ax_s.errorbar(x, fit, yerr=_interval(fit, top["t_s_fit_low"], top["t_s_fit_high"]), ls="none", marker="D",
                  capsize=3, color="k", label=r"$t_S$ fitted to $\varphi(t)$ (stochastic samplers)")
    mids = []
    for r in top.itertuples():
        match = uturns[(uturns["model"] == r.model) & (uturns["sampler"] == r.sampler)
                       & (uturns["n"] == r.n) & (uturns["starts_from"] == "training")]
        mids.append(float(match["t_class_mid"].iloc[0]) if not match.empty else np.nan)
    ax_s.plot(x, mids, ls="none", marker="o", color="C2", label="U-turn class curve halfway")
    ax_s.axhline(float(top["t_s_theory"].iloc[0]), color="k", ls="--", lw=1, label=r"theory $t_S$")
    ax_s.set(ylabel="time", title="speciation")
    ax_s.legend(fontsize=7)
    for ax in (ax_c, ax_m, ax_s):
        ax.set_xticks(x, labels, fontsize=7)
    return fig
