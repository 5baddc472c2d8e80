"""Streamed softmax over the Gaussian-kernel logits of a training set: the one hot loop shared by the exact
empirical score (:class:`score.EmpiricalScore`) and the excess entropy (:func:`entropy.excess_entropy`).

For query rows ``x`` (shape ``(B, d)``) and training points ``a_mu`` (rows of ``a``, shape ``(n, d)``) the
logits are

    l[b, mu] = alpha x_b.a_mu + bias_mu,  alpha = e^{-t}/Delta_t,  bias_mu = -e^{-2t} |a_mu|^2 / (2 Delta_t),

i.e. ``-|x_b - a_mu e^{-t}|^2 / (2 Delta_t)`` up to the row constant ``|x_b|^2 / (2 Delta_t)``
(docs/science.md section 2: a batched distance matrix, never a loop over samples).  The columns are
processed in chunks with a running row max and a rescaled running sum (online softmax), so memory does
not grow with ``n``.

Precision contract.  The product and the bias (one fused ``addmm``) run in the dtype of the operands; the
exponentials of a chunk are taken in that dtype after subtracting the running row max (values in (0, 1],
relative error <= u each) and summed over the chunk's columns in that dtype (positive terms, cascade
summation: relative error a few u); the running max, the sums across chunks and the rescaling are
float64.  The weighted sum of the training points (``weights @ a``, for the posterior mean) runs in the
operand dtype per chunk and is accumulated across chunks in float64.  With float64 operands everything is
float64 (the reference).

Error of float32 logits (:func:`float32_logit_error`).  A float32 dot product of length d has rounding
error ``|delta(x.a)| <= gamma_d |x| |a|`` in the worst case (``gamma_d ~ d u``, ``u = 2^-24 ~ 6e-8``) and
~``sqrt(d) u |x| |a|`` in practice (blocked fused multiply-add accumulation, errors of random sign).  The
product is scaled by alpha and the bias added in float32 (two more roundings of relative size u), so

    |delta l| <~ u [(sqrt(d) + 2) e^{-t} |x| |a| + e^{-2t} |a|^2] / Delta_t.

It is the error of the float32 cross term relative to Delta_t: it grows like 1/Delta_t as t -> 0.  A
logit error ``epsilon`` moves every softmax weight by a factor within ``e^{+-2 epsilon}``, and the
posterior mean ``m = sum_mu w_mu a_mu`` by at most ``2 epsilon sum_mu w_mu |a_mu - m|``.
"""

from __future__ import annotations

import math

import torch

from diffusion_regimes.schedule import delta_t

__all__ = ["FLOAT32_UNIT_ROUNDOFF", "float32_logit_error", "online_softmax"]

FLOAT32_UNIT_ROUNDOFF = 2.0**-24

EXP_FLOOR = -80.0
"""Shifted logits are clamped here before ``exp``: a term below ``e^-80 ~ 2e-35`` of the largest one is
below any float64 rounding of the sum, and float32 ``exp`` is 10-30x slower on CPU where it underflows."""


def float32_logit_error(*, d: int, x_norm: float, a_norm: float, t: float) -> float:
    """Estimated largest absolute error of a float32 logit at time ``t`` (module docstring).

    ``x_norm``, ``a_norm``: the largest norms of the query rows and of the (unscaled) training points.
    """
    decay = math.exp(-t)
    cross = (math.sqrt(d) + 2.0) * decay * x_norm * a_norm
    return FLOAT32_UNIT_ROUNDOFF * (cross + decay**2 * a_norm**2) / float(delta_t(t))


def online_softmax(
    x: torch.Tensor,
    a: torch.Tensor,
    *,
    alpha: float,
    bias: torch.Tensor,
    cols: int,
    weighted_mean: bool = False,
    values: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Streamed log-sum-exp (and softmax-weighted mean) of ``l = alpha x @ a.T + bias`` over the columns.

    ``x``: ``(B, d)`` and ``a``: ``(n, d)`` in the same dtype (float32 or float64); ``bias``: ``(n,)`` in that
    dtype; ``cols``: training points per chunk.  Returns float64 ``(run_max (B,), run_sum (B,),
    run_vec (B, d) or None)`` with ``logsumexp_mu l = run_max + log(run_sum)`` and, when ``weighted_mean``,
    ``sum_mu softmax(l)_mu a_mu = run_vec / run_sum``.  ``values``: ``(n, v)`` in the dtype of ``a``, averaged
    instead of ``a`` when given (``run_vec`` is then ``(B, v)``): the local score machines average only the
    centre pixel of each patch.
    """
    if x.dtype != a.dtype or bias.dtype != a.dtype:
        raise ValueError(f"x, a and bias must share one dtype, got {x.dtype}, {a.dtype}, {bias.dtype}")
    if values is not None and (values.dtype != a.dtype or values.shape[0] != a.shape[0]):
        raise ValueError(f"values must be (n, v) in the dtype of a, got {tuple(values.shape)} {values.dtype}")
    averaged = a if values is None else values
    run_max = run_sum = run_vec = None
    for c0 in range(0, a.shape[0], cols):
        chunk = a[c0:c0 + cols]
        logits = torch.addmm(bias[c0:c0 + cols], x, chunk.T, alpha=alpha)  # (B, c)
        chunk_max = logits.amax(dim=1).to(torch.float64)
        new_max = chunk_max if run_max is None else torch.maximum(run_max, chunk_max)
        shift = new_max.to(logits.dtype)[:, None]
        # exponentials in the operand dtype, each in (0, 1] (relative error <= u), summed in float64;
        # in place on the hot path, out of place when autograd needs the logits (log_density's gradient)
        shifted = logits - shift if logits.requires_grad else logits.sub_(shift)
        weights = shifted.clamp_min(EXP_FLOOR).exp() if logits.requires_grad else shifted.clamp_min_(
            EXP_FLOOR).exp_()
        # the chunk's row sums in the operand dtype (positive terms in (0, 1]; PyTorch reduces in a cascade,
        # so the relative error is a few u), across chunks in float64: summing with dtype=float64 converts
        # every entry first and took 20x longer on a CPU (4096 x 1024 float32 block: 29 ms against 1.5 ms)
        sums = weights.sum(dim=1).to(torch.float64)
        vec = (weights @ averaged[c0:c0 + cols]).to(torch.float64) if weighted_mean else None
        if run_max is None:  # first chunk: nothing to rescale
            run_sum, run_vec = sums, vec
        else:
            rescale = torch.exp(run_max - new_max)
            run_sum = run_sum * rescale + sums
            if vec is not None:
                run_vec = run_vec * rescale[:, None] + vec
        run_max = new_max
    if run_max is None:
        raise ValueError("a must hold at least one training point")
    return run_max, run_sum, run_vec
