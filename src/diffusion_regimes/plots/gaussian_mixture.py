"""Gaussian-mixture figures (paper Figs. 2 and 3, the potential, the collapse-time law)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from diffusion_regimes import theory
from diffusion_regimes.plots import new_figure


def speciation_figure(table: pd.DataFrame, times: pd.DataFrame, *, engine: str, level: float,
                      mu_tilde: float, sigma: float):
    """phi(t) against t/t_S for every d: simulation points with standard errors, theory lines (Fig. 2)."""
    fig, ax = new_figure(figsize=(5.6, 4.0))
    main = table[table["engine"] == engine]
    colors = {}
    for k, (d, group) in enumerate(main.groupby("d")):
        color = f"C{k}"
        colors[d] = color
        t_s = float(theory.t_speciation_spectral(d, mu_tilde=mu_tilde))
        t = np.linspace(0.02, 12.0, 600)
        phi = theory.cloning_probability(t, d=d, mu_tilde=mu_tilde, sigma=sigma)
        ax.plot(t / t_s, phi, color=color, lw=1.2)
        ax.errorbar(group["t_over_tS"], group["phi_sim"], yerr=group["stderr"], fmt="o", ms=3.5, color=color,
                    capsize=2, label=f"$d={d}$ ({int(group['pairs'].iloc[0])} pairs)")
    check = table[table["engine"] != engine]
    for d, group in check.groupby("d"):
        ax.errorbar(group["t_over_tS"], group["phi_sim"], yerr=group["stderr"], fmt="x", ms=5,
                    color=colors.get(d, "k"), capsize=2,
                    label=f"$d={d}$, {group['engine'].iloc[0]}-$d$ engine check")
    ax.axhline(level, color="0.3", ls="--", lw=0.9, label=f"$\\phi={level}$")
    ax.axvline(1.0, color="0.6", ls=":", lw=0.9)
    ax.plot([], [], color="0.2", lw=1.2, label="theory (1-D integral)")
    ax.set_xlim(0, 2.6)
    ax.set_ylim(0.45, 1.02)
    ax.set_xlabel(r"$t / t_S$,  $t_S = \frac{1}{2}\log(d\,\tilde\mu^2)$")
    ax.set_ylabel(r"cloning probability $\phi(t)$")
    ax.set_title("Gaussian mixture: speciation (paper Fig. 2)", fontsize=10)
    ax.legend(fontsize=7.5, loc="upper right")
    return fig


def collapse_figure(table: pd.DataFrame, *, sigma: float):
    """f^e(t)/alpha for every d with theory curves and vertical t_C lines (Fig. 3)."""
    fig, ax = new_figure(figsize=(5.6, 4.0))
    for k, (d, group) in enumerate(table.groupby("d")):
        color = f"C{k}"
        n = int(group["n"].iloc[0])
        ax.errorbar(group["t"], group["f_over_alpha"], yerr=group["stderr"], fmt="o", ms=3.5, color=color,
                    capsize=2, label=f"$d={d}$, $n={n}$ ($n'={int(group['n_prime'].iloc[0])}$)")
        t = np.geomspace(group["t"].min() * 0.9, group["t"].max(), 400)
        f = theory.excess_entropy_theory(t, n=n, d=d, sigma=sigma) / (np.log(n) / d)
        ax.plot(t, f, color=color, lw=1.2)
        ax.axvline(group["t_C_theory"].iloc[0], color=color, ls="--", lw=0.9)
        ax.axvline(group["t_C_numeric"].iloc[0], color=color, ls=":", lw=1.2)
    ax.plot([], [], color="0.2", lw=1.2, label="theory $f(t)/\\alpha$")
    ax.plot([], [], color="0.2", ls="--", lw=0.9, label="$t_C$ theory")
    ax.plot([], [], color="0.2", ls=":", lw=1.2, label="$t_C$ from $f^e$")
    ax.set_xscale("log")
    ticks = [v for v in (0.5, 0.75, 1, 1.5, 2, 3, 4, 6, 8) if table["t"].min() * 0.9 <= v <= table["t"].max()]
    ax.set_xticks(ticks, [f"{v:g}" for v in ticks])
    ax.minorticks_off()
    ax.set_xlabel("$t$")
    ax.set_ylabel(r"excess entropy $f^e(t)/\alpha$,  $\alpha = \log(n)/d$")
    ax.set_title("Gaussian mixture: collapse (paper Fig. 3)", fontsize=10)
    ax.legend(fontsize=7.5, loc="upper left")
    return fig


def log_axis_ticks(low: float, high: float) -> list[float]:
    """Tick values for a log axis over [low, high]: the coarsest of 1, 1-2-5 or 1-1.5-2-3-5-7 per decade
    that gives at least three ticks.

    Labelled explicitly (no minor labels): matplotlib labels minor ticks on a log axis spanning less than
    a decade, and on a narrow axis those "2×10⁻¹ 3×10⁻¹ 4×10⁻¹" labels run into each other.
    """
    for mantissas in ((1.0,), (1.0, 2.0, 5.0), (1.0, 1.5, 2.0, 3.0, 5.0, 7.0)):
        ticks = [
            float(f"{m * 10.0**e:.6g}")  # 0.15, not 0.15000000000000002
            for e in range(int(np.floor(np.log10(low))), int(np.ceil(np.log10(high))) + 1)
            for m in mantissas
            if low <= m * 10.0**e <= high
        ]
        if len(ticks) >= 3:
            return ticks
    return ticks


def collapse_law_figure(table: pd.DataFrame, *, sigma: float):
    """t_C against alpha = log(n)/d: the law (line) and numerical t_C from f^e (points, +-2 SE band)."""
    from matplotlib.ticker import NullFormatter

    fig, ax = new_figure(figsize=(5.0, 3.8))
    alpha = np.geomspace(table["alpha"].min() * 0.7, table["alpha"].max() * 1.4, 300)
    ax.plot(alpha, theory.t_collapse_of_alpha(alpha, sigma=sigma), color="0.2", lw=1.2,
            label=r"theory $\frac{1}{2}\log(1+\sigma^2/(e^{2\alpha}-1))$")
    for k, (n, group) in enumerate(table.groupby("n")):
        lo = (group["t_C_numeric"] - group["t_C_low"]).clip(lower=0)
        hi = (group["t_C_high"] - group["t_C_numeric"]).clip(lower=0)
        ax.errorbar(group["alpha"], group["t_C_numeric"], yerr=[lo.fillna(0), hi.fillna(0)], fmt="o", ms=4,
                    color=f"C{k}", capsize=2, label=f"numeric, $n={n}$")
    ax.set_xscale("log")
    ticks = log_axis_ticks(float(alpha[0]), float(alpha[-1]))
    ax.set_xticks(ticks, [f"{v:g}" for v in ticks])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlim(alpha[0], alpha[-1])
    ax.set_xlabel(r"$\alpha = \log(n)/d$")
    ax.set_ylabel("collapse time $t_C$")
    ax.set_title("Collapse-time law", fontsize=10)
    ax.legend(fontsize=7.5)
    return fig


def potential_figure(*, d: int, mu_tilde: float, offsets: tuple[float, ...]):
    """V(q, t) at times t_S + offset: a single well above t_S, a double well below.

    The q range is set by the deepest wells: for t below t_S the minima sit near
    q* = 2 mu_tilde^2 e^{-t} sqrt(d) (where tanh saturates in V'(q) = 0), which moves out fast as t falls,
    so a fixed range would cut them off and show only a falling curve.
    """
    fig, ax = new_figure(figsize=(6.6, 3.8))
    t_s = float(theory.t_speciation(d))
    times = [(off, t_s + off) for off in sorted(offsets, reverse=True) if t_s + off > 0]
    q_star = max([2.0 * mu_tilde**2 * np.exp(-t) * np.sqrt(d) for _, t in times] + [2.0])
    q = np.linspace(-1.25 * q_star, 1.25 * q_star, 1201)
    centre = q.size // 2  # q = 0
    lowest = 0.0
    for k, (off, t) in enumerate(times):
        v = theory.potential(q, t, d=d, mu_tilde=mu_tilde)
        v = v - v[centre]
        ax.plot(q, v, color=f"C{k}", lw=1.3, label=f"$t = t_S {off:+.1f}$ ({t:.2f})")
        inner = slice(1, -1)
        is_min = (v[inner] < v[:-2]) & (v[inner] < v[2:])
        wells = q[inner][is_min]
        if wells.size:
            ax.plot(wells, v[inner][is_min], "o", ms=3.5, color=f"C{k}")
        lowest = min(lowest, float(v.min()))
    ax.plot([], [], "o", ms=3.5, color="0.3", label="minima of $V$")
    ax.set_xlabel(r"$q = m\cdot x / \sqrt{d}$")
    ax.set_ylabel(r"$V(q, t) - V(0, t)$")
    depth = max(abs(lowest), 1.0)
    ax.set_ylim(-1.1 * depth, 0.6 * depth)
    ax.set_title(f"Effective potential, $d = {d}$, $t_S = {t_s:.2f}$: double well below $t_S$", fontsize=10)
    # outside the axes: inside, it would hide a well whichever corner it took
    ax.legend(fontsize=7.5, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    return fig
