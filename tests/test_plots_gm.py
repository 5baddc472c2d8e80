"""Gaussian-mixture figures read on their own (issue 11): the wells are in view, log ticks do not collide."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.ticker import NullFormatter

from diffusion_regimes import theory
from diffusion_regimes.plots.gaussian_mixture import collapse_law_figure, log_axis_ticks, potential_figure


@pytest.mark.parametrize("d", [256, 1024, 16384])
def test_potential_shows_both_wells_below_t_s(d):
    fig = potential_figure(d=d, mu_tilde=1.0, offsets=(-1.0, -0.5, 0.0, 0.5, 1.0))
    ax = fig.axes[0]
    (x_lo, x_hi), (y_lo, y_hi) = ax.get_xlim(), ax.get_ylim()
    t_s = float(theory.t_speciation(d))
    curves = [line for line in ax.get_lines() if len(line.get_xdata()) > 100]
    assert len(curves) == 5
    for line, offset in zip(curves, (1.0, 0.5, 0.0, -0.5, -1.0), strict=True):
        q, v = np.asarray(line.get_xdata()), np.asarray(line.get_ydata())
        lowest = q[np.argmin(v)]
        # every curve's minimum lies inside the axes, in x and in y
        assert x_lo < lowest < x_hi and y_lo < v.min() < y_hi, offset
        if offset < 0:
            # below t_S the minimum is off centre: the double well the caption promises, seen whole
            # (the potential rises again beyond it inside the plotted range)
            assert abs(lowest) > 0.5 and v[-1] > v.min() and v[0] > v.min(), (d, offset, t_s)


def test_log_ticks_are_plain_and_few():
    assert log_axis_ticks(0.1, 0.45) == [0.1, 0.15, 0.2, 0.3]
    assert log_axis_ticks(0.02, 0.3) == [0.02, 0.05, 0.1, 0.2]
    assert log_axis_ticks(1e-4, 0.4) == [1e-4, 1e-3, 1e-2, 0.1]


def test_collapse_law_has_no_minor_tick_labels():
    n = np.array([1000, 1000, 100000, 100000])
    d = np.array([16, 256, 16, 256])
    table = pd.DataFrame({"n": n, "d": d, "alpha": np.log(n) / d, "t_C_numeric": 0.5, "t_C_low": 0.4,
                          "t_C_high": 0.6})
    ax = collapse_law_figure(table, sigma=1.0).axes[0]
    assert isinstance(ax.xaxis.get_minor_formatter(), NullFormatter)
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels and all("times" not in label and "^" not in label for label in labels), labels
