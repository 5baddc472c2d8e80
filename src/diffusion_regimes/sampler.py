"""Backward (generative) dynamics: one reverse step, trajectories and cloning sweeps built on it.

A *score* is any callable ``score(x, t) -> F`` returning ``grad_x log P_t(x)`` for a batch ``x`` of shape
``(B, ...)`` at continuous time ``t`` (analytic Gaussian mixture, exact empirical score, or a noise-predicting
network through an adapter); the sampler never knows which it has (docs/architecture.md principle 1).

Three integrators share the one interface ``step(x, i, score, noise)`` which moves from ``times[i]`` to
``times[i+1]`` (descending, ending at ``t = 0``):

* :class:`EulerMaruyama` on a uniform OU grid,
  ``y(t - eta) = y + eta [y + 2 F(y, t)] + sqrt(2 eta) xi`` (docs/science.md section 1);
* :class:`HeunODE`, the deterministic probability-flow ODE ``dy/ds = y + F`` with Heun steps (any grid);
* :class:`DDPMAncestral` on the 1000-step DDPM grid,
  ``x(k-1) = x/sqrt(1-b) - b/sqrt((1-b)(1-abar)) eps + sqrt(b) z`` with ``eps = -sqrt(1-abar) F``,
  and no noise on the last step; or on K of those steps (respaced DDPM, :meth:`DDPMAncestral.respaced`).

:func:`snap_to_grid` maps requested times (e.g. branch times) to the nearest grid index.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import torch

from diffusion_regimes.errors import ConfigError
from diffusion_regimes.schedule import DDPMSchedule, delta_t, ou_time_grid


class Score(Protocol):
    """``score(x, t)``: ``x`` of shape ``(B, ...)`` at continuous time ``t`` -> ``grad log P_t(x)``, same
    shape."""

    def __call__(self, x: torch.Tensor, t: float) -> torch.Tensor: ...


class Integrator(Protocol):
    times: torch.Tensor  # (L+1,) float64, descending, times[-1] == 0

    @property
    def n_steps(self) -> int: ...

    def step(self, x: torch.Tensor, i: int, score: Score, noise: torch.Tensor) -> torch.Tensor: ...


@dataclass(frozen=True)
class EulerMaruyama:
    """Euler-Maruyama on a descending time grid ``times`` (shape ``(L+1,)``, float64)."""

    times: torch.Tensor

    @classmethod
    def uniform(cls, *, t_max: float, n_steps: int) -> EulerMaruyama:
        return cls(ou_time_grid(t_max=t_max, n_steps=n_steps))

    @property
    def n_steps(self) -> int:
        return int(self.times.numel()) - 1

    def step(self, x: torch.Tensor, i: int, score: Score, noise: torch.Tensor) -> torch.Tensor:
        t = float(self.times[i])
        eta = t - float(self.times[i + 1])
        return x + eta * (x + 2.0 * score(x, t)) + math.sqrt(2.0 * eta) * noise


@dataclass(frozen=True)
class HeunODE:
    """The probability-flow ODE of the OU process, integrated with Heun's second-order method.

    Backward in time the deterministic flow ``dy/ds = y + F(y, t)`` (``s`` = backward time; drift of the
    reverse SDE with half the score and no noise) carries P_T to P_0 through the same marginals P_t as the
    stochastic samplers (docs/science.md section 1).  One step from ``t = times[i]`` to ``t' = times[i+1]``,
    ``eta = t - t'``: ``d1 = x + F(x, t)``, ``x~ = x + eta d1``, ``d2 = x~ + F(x~, t')``,
    ``x' = x + eta (d1 + d2) / 2``.  The last step, which ends at ``t' = 0`` where an empirical score is
    singular, is the Euler step of the same ODE in the noise-level variable ``sigma = sqrt(e^{2t} - 1)``
    (for ``y = e^t x``, ``dy/dsigma = (y - D(y))/sigma``, so one step to sigma = 0 lands on ``D``): the
    posterior mean ``E[x_0 | x_t] = e^t (x + Delta_t F(x, t))`` (Karras et al. 2022 end their Heun sampler
    the same way).  An Euler step in t from ``t(k=1)`` would move only part of the way to the nearest
    training point; on MNIST 1/8 (n = 1000, exact score, K = 100) it leaves half the samples short of the
    memorisation ratio 1/3.  Deterministic: ``noise`` is ignored, so clones of a shared trunk never separate
    (cloning φ(t) is meaningless for it; trajectories, t̂_C and U-turns are not).
    """

    times: torch.Tensor

    @classmethod
    def uniform(cls, *, t_max: float, n_steps: int) -> HeunODE:
        return cls(ou_time_grid(t_max=t_max, n_steps=n_steps))

    @classmethod
    def on_ddpm_grid(cls, n_steps: int | None = None, *, schedule: DDPMSchedule | None = None) -> HeunODE:
        """The times of the DDPM sampler's grid (all L steps, or the ``n_steps`` of a respaced one), so
        that the ODE and the ancestral sampler can be compared step for step."""
        ancestral = DDPMAncestral(schedule or DDPMSchedule()) if n_steps is None else \
            DDPMAncestral.respaced(n_steps, schedule=schedule)
        return cls(ancestral.times)

    @property
    def n_steps(self) -> int:
        return int(self.times.numel()) - 1

    def step(self, x: torch.Tensor, i: int, score: Score, noise: torch.Tensor) -> torch.Tensor:
        t, t_next = float(self.times[i]), float(self.times[i + 1])
        eta = t - t_next
        force = score(x, t)
        if t_next <= 0.0:
            return math.exp(t) * (x + delta_t(t) * force)
        d1 = x + force
        predicted = x + eta * d1
        d2 = predicted + score(predicted, t_next)
        return x + 0.5 * eta * (d1 + d2)


SPACINGS = ("uniform", "quadratic")
"""Which K of the L DDPM steps a respaced sampler keeps (:meth:`DDPMAncestral.respaced`)."""

VARIANCES = ("large", "posterior")
"""Noise variance of an ancestral step (:class:`DDPMAncestral`): ``large`` is ``sigma^2 = beta'``,
``posterior`` the variance of the forward process's posterior ``q(x_{k'} | x_k, x_0)``,
``beta~' = beta' (1 - alpha_bar(k')) / (1 - alpha_bar(k))`` (Ho et al. 2020 section 3.2; the two are
the upper and lower bounds of the reverse-step variance)."""


@dataclass(frozen=True)
class DDPMAncestral:
    """Ancestral DDPM sampling on the kept DDPM steps ``steps`` (all L steps by default).

    ``steps``: kept DDPM indices ``k_0 > k_1 > ... > k_{K-1} >= 1``, descending (``None``: ``L, ..., 1``,
    the 1000-step sampler).  Grid index ``i`` stands for DDPM step ``k_i`` (and ``i = K`` for ``k = 0``,
    the clean data), so ``times[i] = t(k_i)`` and ``n_steps = K``; step ``i`` moves from ``k_i`` to
    ``k_{i+1}`` (to 0 for the last one) and evaluates the score at ``t(k_i)``, on the DDPM grid.

    Respacing (Nichol & Dhariwal 2021, improved-diffusion ``respace.py``): the kept steps form a DDPM of
    their own with ``beta'_i = 1 - alpha_bar(k_i) / alpha_bar(k_{i+1})``, so ``alpha_bar`` at every kept
    step is the original one; the ancestral step uses that beta', with variance ``sigma^2 = beta'_i`` and
    no noise on the last step.  Where ``k_{i+1} = k_i - 1`` beta' is ``beta_{k_i}`` itself (equal in exact
    arithmetic; taking the stored value keeps the K = L sampler bit-identical to the unrespaced one).

    ``variance``: ``"large"`` (the default, ``sigma^2 = beta'``) or ``"posterior"``
    (``sigma^2 = beta'_i (1 - alpha_bar(k_{i+1})) / (1 - alpha_bar(k_i))``, improved-diffusion's "fixed
    small"); both leave the mean of the step unchanged, and both put no noise on the last step.  For a
    learned score at small K the posterior variance adds less noise in the last steps, where the image
    details are drawn; for the exact score both rules sample the same law as K -> L.
    """

    schedule: DDPMSchedule = field(default_factory=DDPMSchedule)
    steps: tuple[int, ...] | None = None
    variance: str = "large"

    def __post_init__(self) -> None:
        big_l = self.schedule.n_steps
        if self.steps is not None:
            kept = tuple(int(k) for k in self.steps)
            if not kept or any(b >= a for a, b in zip(kept, kept[1:], strict=False)) or not (
                big_l >= kept[0] and kept[-1] >= 1
            ):
                raise ValueError(f"steps must be DDPM indices strictly descending within [1, {big_l}], "
                                 f"got {self.steps}")
            object.__setattr__(self, "steps", kept)
        grid = (self.steps if self.steps is not None else tuple(range(big_l, 0, -1))) + (0,)
        betas, alpha_bar = self.schedule.betas, self.schedule.alpha_bar
        step_betas = tuple(
            float(betas[k]) if k_next == k - 1 else float(1.0 - alpha_bar[k] / alpha_bar[k_next])
            for k, k_next in zip(grid[:-1], grid[1:], strict=True)
        )
        if self.variance == "large":
            noise_vars = step_betas
        elif self.variance == "posterior":
            noise_vars = tuple(
                b * float((1.0 - alpha_bar[k_next]) / (1.0 - alpha_bar[k]))
                for b, k, k_next in zip(step_betas, grid[:-1], grid[1:], strict=True)
            )
        else:
            raise ConfigError(f"DDPM sampler: variance {self.variance!r} is not valid; "
                              f"choose one of {list(VARIANCES)}")
        object.__setattr__(self, "_grid", grid)
        object.__setattr__(self, "_betas", step_betas)
        object.__setattr__(self, "_noise_std", tuple(math.sqrt(v) for v in noise_vars))
        object.__setattr__(self, "_times", self.schedule.times[list(grid)])

    @classmethod
    def respaced(cls, n_steps: int, *, schedule: DDPMSchedule | None = None,
                 spacing: str = "uniform", variance: str = "large") -> DDPMAncestral:
        """The sampler on ``n_steps = K`` of the schedule's L steps, from ``k = L`` down to ``k = 1``.

        ``spacing="uniform"``: evenly spaced k (improved-diffusion's ``space_timesteps(L, [K])``: 0-based
        indices ``round(j (L-1)/(K-1))``, i.e. ``k = 1 + round(j (L-1)/(K-1))``), the standard.
        ``spacing="quadratic"``: ``k = 1 + round((L-1) (j/(K-1))^2)`` (the "quad" sequence of DDIM, Song et
        al. 2021), raised where needed to stay strictly increasing: denser at small k, i.e. at small t
        where the exact score memorises.  K = L gives every step (the unrespaced sampler).
        """
        schedule = schedule or DDPMSchedule()
        big_l = schedule.n_steps
        if not 2 <= n_steps <= big_l:
            raise ConfigError(f"respaced DDPM: n_steps = {n_steps} must lie in [2, {big_l}] (the schedule's "
                              "steps); use the schedule itself for all of them")
        if spacing == "uniform":
            # improved-diffusion's accumulation of a fractional stride, rounded with Python's round
            stride, position, kept = (big_l - 1) / (n_steps - 1), 0.0, []
            for _ in range(n_steps):
                kept.append(1 + round(position))
                position += stride
        elif spacing == "quadratic":
            kept = []
            for j in range(n_steps):
                k = 1 + round((big_l - 1) * (j / (n_steps - 1)) ** 2)
                kept.append(max(k, kept[-1] + 1) if kept else k)
            if kept[-1] != big_l:
                raise ValueError(f"quadratic spacing of {n_steps} steps does not end on k = {big_l}: {kept}")
        else:
            raise ConfigError(f"respaced DDPM: spacing {spacing!r} is not valid; "
                              f"choose one of {list(SPACINGS)}")
        return cls(schedule, steps=tuple(reversed(kept)), variance=variance)

    @property
    def ddpm_steps(self) -> tuple[int, ...]:
        """The DDPM index of every grid point, ``(k_0, ..., k_{K-1}, 0)`` (``K + 1`` entries)."""
        return self._grid

    @property
    def step_betas(self) -> tuple[float, ...]:
        """``beta'_i`` of every step ``i = 0..K-1`` (float64 values)."""
        return self._betas

    @property
    def times(self) -> torch.Tensor:  # type: ignore[override]
        """``t(k_i)`` for ``i = 0..K``, shape ``(K+1,)``, float64, descending to 0."""
        return self._times

    @property
    def n_steps(self) -> int:
        return len(self._grid) - 1

    def step(self, x: torch.Tensor, i: int, score: Score, noise: torch.Tensor) -> torch.Tensor:
        k = self._grid[i]
        beta = self._betas[i]
        t = float(self.schedule.times[k])
        # eps = -sqrt(1 - abar) F, so the eps term of the ancestral update becomes + beta/sqrt(1-beta) F.
        x_next = (x + beta * score(x, t)) / math.sqrt(1.0 - beta)
        if i < len(self._betas) - 1:
            x_next = x_next + self._noise_std[i] * noise
        return x_next


def snap_to_grid(times: Sequence[float] | torch.Tensor, integrator: Integrator) -> list[int]:
    """Grid index ``i`` of ``integrator.times`` nearest to each requested time (same order, repeats kept).

    For branch times chosen on a t grid: ``integrator.times[i]`` is the time actually used (for a
    :class:`DDPMAncestral`, ``integrator.ddpm_steps[i]`` the DDPM step).  Times outside
    ``[0, times[0]]`` are an error rather than silently moved to an end of the grid.
    """
    grid = integrator.times.to(torch.float64)
    wanted = torch.as_tensor(times, dtype=torch.float64).reshape(-1)
    t_max = float(grid[0])
    bad = wanted[(wanted < 0) | (wanted > t_max * (1 + 1e-12))]
    if bad.numel():
        raise ValueError(f"times {bad.tolist()} lie outside the sampler's grid [0, {t_max:.6g}]")
    return [int(i) for i in torch.argmin((grid[None, :] - wanted[:, None]).abs(), dim=1)]


def reverse_step(
    x: torch.Tensor, *, i: int, integrator: Integrator, score: Score, generator: torch.Generator | None
) -> torch.Tensor:
    """The one reverse step: draw fresh Gaussian noise and move ``x`` from ``times[i]`` to ``times[i+1]``."""
    noise = torch.randn(x.shape, dtype=x.dtype, device=x.device, generator=generator)
    return integrator.step(x, i, score, noise)


Hook = Callable[[int, float, torch.Tensor], None]
"""Called after every step as ``hook(i_next, t_next, x)`` with the state at ``times[i_next]``."""


def run_trajectories(
    x: torch.Tensor,
    *,
    integrator: Integrator,
    score: Score,
    generator: torch.Generator | None,
    start: int = 0,
    stop: int | None = None,
    hooks: Sequence[Hook] = (),
    progress: bool = False,
) -> torch.Tensor:
    """Integrate a batch ``x`` (state at ``times[start]``) down to ``times[stop]`` (default: ``t = 0``)."""
    stop = integrator.n_steps if stop is None else stop
    steps = range(start, stop)
    if progress:
        from diffusion_regimes.progress import progress as bar

        steps = bar(steps, desc="reverse steps", unit="step", leave=False)
    for i in steps:
        x = reverse_step(x, i=i, integrator=integrator, score=score, generator=generator)
        for hook in hooks:
            hook(i + 1, float(integrator.times[i + 1]), x)
    return x


@dataclass(frozen=True)
class CloneSweep:
    """End states of a shared-trunk cloning sweep.

    ``trunk``: ``(N, ...)`` the trunk trajectories at ``t = 0``; ``clones``: ``(B, N, ...)`` the clone
    started from the trunk at ``times[branch_indices[b]]``, at ``t = 0``.  Pair ``(trunk[n], clones[b, n])``
    shares its history down to branch time ``b`` and has independent noise afterwards.
    """

    trunk: torch.Tensor
    clones: torch.Tensor
    branch_indices: tuple[int, ...]
    branch_times: tuple[float, ...]
    score_evaluations: int  # per trajectory of the trunk: steps x (1 + clones alive), summed

    def pairs(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The clone pairs at t = 0 as ``(first, second)``, each ``(B, N, ...)`` (first = the trunk)."""
        return self.trunk.unsqueeze(0).expand_as(self.clones), self.clones


@dataclass(frozen=True)
class RestartSweep:
    """End states of the restart-per-branch protocol: pair ``(first[b, n], second[b, n])`` ran from its
    own noise to ``times[branch_indices[b]]``, was cloned there, and both copies ran on to t = 0."""

    first: torch.Tensor  # (B, N, ...)
    second: torch.Tensor  # (B, N, ...)
    branch_indices: tuple[int, ...]
    branch_times: tuple[float, ...]
    score_evaluations: int  # per pair: sum_b [i_b + 2 (L - i_b)]

    def pairs(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.first, self.second


def restart_sweep(
    starts: torch.Tensor,
    *,
    integrator: Integrator,
    score: Score,
    branch_indices: Sequence[int],
    generator: torch.Generator | None,
    progress: bool = False,
) -> RestartSweep:
    """Cloning where every branch time restarts from noise (the reference protocol, docs/science.md
    section 5).

    ``starts``: ``(B, N, ...)`` independent initial states at ``times[0]``, one batch per branch index.
    Built on :func:`run_trajectories` (hence on the same :func:`reverse_step` as :func:`clone_sweep`); it
    costs ``sum_b [L + (L - i_b)]`` score evaluations per pair against ``L + sum_b (L - i_b)`` for the
    shared trunk, and gives independent pairs across branch times.
    """
    branch = [int(i) for i in branch_indices]
    if starts.shape[0] != len(branch):
        raise ValueError(f"need one start batch per branch index: {starts.shape[0]} vs {len(branch)}")
    n = starts.shape[1]
    first, second = [], []
    evaluations = 0
    for b, i_b in enumerate(branch):
        trunk = run_trajectories(starts[b], integrator=integrator, score=score, generator=generator,
                                 stop=i_b, progress=progress)
        both = run_trajectories(torch.cat([trunk, trunk], dim=0), integrator=integrator, score=score,
                                generator=generator, start=i_b, progress=progress)
        first.append(both[:n])
        second.append(both[n:])
        evaluations += i_b + 2 * (integrator.n_steps - i_b)
    return RestartSweep(
        first=torch.stack(first),
        second=torch.stack(second),
        branch_indices=tuple(branch),
        branch_times=tuple(float(integrator.times[i]) for i in branch),
        score_evaluations=evaluations,
    )


def staggered_reverse(indices: Sequence[int], join: Callable[[int], torch.Tensor], *, integrator: Integrator,
                      score: Score, generator: torch.Generator | None) -> torch.Tensor:
    """Integrate to ``t = 0`` batches that enter at different grid indices, as one growing batch.

    ``indices``: ascending grid indices (= descending times); ``join(i)`` returns the states that enter at
    ``times[i]``.  The batch of ``indices[0]`` starts the integration and each later one is concatenated
    when the integration reaches its index, so every step is one score call on everything in flight (the
    U-turns of all times in one batch).  Returns the end states in the order of ``indices``.
    """
    state = join(indices[0])
    joined = 1
    for i in range(indices[0], integrator.n_steps):
        while joined < len(indices) and indices[joined] == i:
            state = torch.cat([state, join(i)])
            joined += 1
        state = reverse_step(state, i=i, integrator=integrator, score=score, generator=generator)
    while joined < len(indices):  # an index on the grid's last point (t = 0) takes no step
        state = torch.cat([state, join(indices[joined])])
        joined += 1
    return state


def shared_trunk_evaluations(branch_indices: Sequence[int], n_steps: int) -> int:
    """Score evaluations per pair of the shared-trunk sweep: ``L + sum_b (L - i_b - 1)`` (a clone's first
    step reuses the trunk's evaluation at the branch point; a branch at ``t = 0`` costs nothing)."""
    return n_steps + sum(max(n_steps - int(i) - 1, 0) for i in set(branch_indices))


def restart_evaluations(branch_indices: Sequence[int], n_steps: int) -> int:
    """Score evaluations per pair of the restart-per-branch protocol: ``sum_b [L + (L - i_b)]``."""
    return sum(n_steps + (n_steps - int(i)) for i in branch_indices)


class StepRecorder:
    """A hook that stores ``measure(x_part, t)`` at every step (or at ``steps``) of a trajectory or sweep.

    ``part = "trunk"`` keeps the first ``n_trunk`` rows of the state (a :func:`clone_sweep` state is the
    trunk followed by the alive clones); ``part = "all"`` keeps everything (then the row count grows as
    clones appear).  Call it once by hand with ``i = 0`` to record the initial state.
    ``records`` maps step index ``i`` -> ``(t, value)``.
    """

    def __init__(
        self,
        measure: Callable[[torch.Tensor, float], torch.Tensor],
        *,
        n_trunk: int,
        part: str = "trunk",
        steps: Sequence[int] | None = None,
    ) -> None:
        if part not in ("trunk", "all"):
            raise ValueError(f"part must be 'trunk' or 'all', got {part!r}")
        self.measure = measure
        self.n_trunk = n_trunk
        self.part = part
        self.steps = None if steps is None else set(int(i) for i in steps)
        self.records: dict[int, tuple[float, torch.Tensor]] = {}

    def __call__(self, i: int, t: float, x: torch.Tensor) -> None:
        if self.steps is not None and i not in self.steps:
            return
        part = x[: self.n_trunk] if self.part == "trunk" else x
        self.records[i] = (t, self.measure(part, t))

    def stacked(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(times (S,) float64, values (S, ...))`` in step order (requires equal-shape values)."""
        keys = sorted(self.records)
        times = torch.tensor([self.records[k][0] for k in keys], dtype=torch.float64)
        return times, torch.stack([self.records[k][1] for k in keys])


@dataclass(frozen=True)
class _SharedWithTrunk:
    """Score of a state whose last ``copies * n`` rows repeat its first ``n`` (the trunk): the network
    sees the ``unique`` leading rows once and the copies reuse the trunk's rows of the result."""

    score: Score
    unique: int
    n: int
    copies: int

    def __call__(self, x: torch.Tensor, t: float) -> torch.Tensor:
        head = self.score(x[: self.unique], t)
        return torch.cat([head, head[: self.n].repeat(self.copies, *([1] * (head.ndim - 1)))], dim=0)


def clone_sweep(
    x: torch.Tensor,
    *,
    integrator: Integrator,
    score: Score,
    branch_indices: Sequence[int],
    generator: torch.Generator | None,
    hooks: Sequence[Hook] = (),
    progress: bool = False,
) -> CloneSweep:
    """Cloning with a shared trunk (docs/science.md section 5); :func:`restart_sweep` is the reference
    protocol.

    One trunk trajectory per starting point ``x`` (state at ``times[0]``) runs to ``t = 0``; when it passes
    each branch index a clone is copied from it, and all alive states advance together with independent
    noise through :func:`reverse_step`.  B branch times cost ``L + sum_b (L - i_b - 1)`` score evaluations
    per pair (a clone's first step starts on the trunk's state, so it takes the trunk's evaluation), against
    ``sum_b (L + (L - i_b))`` when every branch time restarts from noise.

    Hooks see the concatenated state ``(N * (1 + alive clones), ...)``: trunk first, then clones in
    branch order.
    """
    branch = sorted(set(int(i) for i in branch_indices))
    if branch and (branch[0] < 0 or branch[-1] >= integrator.n_steps + 1):
        raise ValueError(f"branch indices must lie in [0, {integrator.n_steps}], got {branch}")
    n = x.shape[0]
    state = x
    evaluations = 0
    steps = range(integrator.n_steps)
    if progress:
        from diffusion_regimes.progress import progress as bar

        steps = bar(steps, desc="cloning sweep", unit="step", leave=False)
    next_branch = 0
    for i in steps:
        copies = 0
        while next_branch < len(branch) and branch[next_branch] == i:
            state = torch.cat([state, state[:n]], dim=0)
            next_branch += 1
            copies += 1
        # clones born at this step sit exactly on the trunk: their first evaluation is the trunk's
        step_score = _SharedWithTrunk(score, unique=state.shape[0] - copies * n, n=n, copies=copies) \
            if copies else score
        state = reverse_step(state, i=i, integrator=integrator, score=step_score, generator=generator)
        evaluations += state.shape[0] // n - copies
        for hook in hooks:
            hook(i + 1, float(integrator.times[i + 1]), state)
    # a branch at the last index (t = 0) is a clone with no independent steps
    while next_branch < len(branch):
        state = torch.cat([state, state[:n]], dim=0)
        next_branch += 1
    trunk = state[:n]
    clones = state[n:].reshape(len(branch), n, *x.shape[1:])
    return CloneSweep(
        trunk=trunk,
        clones=clones,
        branch_indices=tuple(branch),
        branch_times=tuple(float(integrator.times[i]) for i in branch),
        score_evaluations=evaluations,
    )
