"""The cloning experiment end to end on a tiny synthetic training set (shapes, limits, collapse, resume)."""

import numpy as np
import pytest
import torch

from diffusion_regimes.errors import ConfigError
from diffusion_regimes.regimes import RegimesSpec, cloning_experiment, quality_verdict
from diffusion_regimes.schedule import DDPMSchedule
from diffusion_regimes.score import EmpiricalScore

N = 8


def _two_clusters():
    gen = torch.Generator().manual_seed(0)
    labels = torch.arange(N) % 2
    train = 0.3 * torch.randn(N, 1, 4, 4, dtype=torch.float64, generator=gen)
    train += (2.0 * labels - 1.0).double()[:, None, None, None]
    return train


def _labeller(x):
    """Class probabilities of the sign of the pixel sum (a perfect labeller for the two clusters)."""
    one = (x.reshape(x.shape[0], -1).sum(dim=1) > 0).double()
    return torch.stack([1.0 - one, one], dim=1)


def _run(spec, *, chunk_dir=None, pairs=24):
    train = _two_clusters()
    return cloning_experiment(
        score=EmpiricalScore(train.reshape(N, -1)), training=train, spec=spec, n_pairs=pairs, steps=100,
        times=spec.branch_times(t_speciation=0.5, t_collapse=0.2, schedule=DDPMSchedule()), seed=3,
        labeller=_labeller, chunk_dir=chunk_dir,
    )


def test_cloning_experiment_on_two_clusters_collapses_onto_training_points():
    spec = RegimesSpec(n_boot=100, strip_times=3, chunk_pairs=10, branch_uniform=6, branch_dense=3,
                     branch_t_min=0.02, branch_t_max_factor=4.0)
    res = _run(spec)
    assert res.chunks == 3 and res.n_pairs == 24 and res.n_steps == 100
    assert np.all(np.diff(res.branch_times) > 0) and res.branch_steps.size >= 8
    # clusters 2 / 0.3 apart in d = 16: a clone branched at the smallest time keeps the class; it keeps the
    # training point more often than one branched from pure noise, and phi_C <= phi since the same training
    # point implies the same class here
    assert res.phi[0] == 1.0 and res.phi_c[0] > res.phi_c[-1]
    assert np.all(res.phi_c <= res.phi + 1e-12)
    # the exact empirical score ends exactly on training points (last DDPM step is noiseless)
    assert np.all(res.memorisation < 1e-6)
    assert res.t_collapse.shape == (24,) and np.all(res.t_collapse >= 0)
    assert res.restart_score_evaluations > res.score_evaluations
    assert len(res.strip) == 3 and res.strip[0][2].shape == (1, 1, 4, 4)
    table = res.branch_table()
    assert table.shape[0] == res.branch_steps.size and {"phi_fit", "phi_c_fit"} <= set(table)
    summary = res.summary()
    assert summary["confident_fraction"] == 1.0 and summary["phi_t_min"] == 1.0


def test_sweep_resumes_from_completed_chunks_with_the_same_result(tmp_path):
    spec = RegimesSpec(n_boot=50, strip_times=3, chunk_pairs=8, branch_uniform=4, branch_dense=0)
    whole = _run(spec, chunk_dir=tmp_path)
    chunks = sorted(tmp_path.glob("chunk-*.pt"))
    assert len(chunks) == 3
    chunks[-1].unlink()  # as if the job had been killed during the last chunk
    again = _run(spec, chunk_dir=tmp_path)
    uninterrupted = _run(spec, chunk_dir=None)
    for other in (again, uninterrupted):
        np.testing.assert_array_equal(other.phi, whole.phi)
        np.testing.assert_array_equal(other.t_collapse, whole.t_collapse)
        assert torch.equal(other.samples, whole.samples)
        # every estimate equal (nan where the toy's curve gives no fit); only the wall time differs
        np.testing.assert_equal({k: v for k, v in other.summary().items() if k != "seconds"},
                                {k: v for k, v in whole.summary().items() if k != "seconds"})


def test_branch_time_grid_is_dense_around_both_crossings():
    spec = RegimesSpec()
    times = spec.branch_times(t_speciation=1.0, t_collapse=0.5, schedule=DDPMSchedule())
    assert times.size == 18 and times[0] == pytest.approx(0.05) and times[-1] == pytest.approx(2.5)
    assert np.sum(np.abs(times - 1.0) <= 0.301) >= 4 + 2 and np.sum(np.abs(times - 0.5) <= 0.151) >= 4
    steps = RegimesSpec(branch_grid="steps", branch_every=250, branch_max_step=1000)
    assert steps.branch_times(t_speciation=1.0, t_collapse=0.5, schedule=DDPMSchedule()).size == 4
    with pytest.raises(ConfigError, match="branch_grid"):
        RegimesSpec(branch_grid="log")


def test_pairs_models_and_steps_per_model():
    spec = RegimesSpec(n_pairs={"exact": 1000, "unet": 256}, n_pairs_prefix=500, sampler_steps={"unet": 50},
                     models={"lsun": ("unet",)})
    assert spec.pairs_for("exact", n=1000, subset_n=1000) == 1000
    assert spec.pairs_for("exact", n=100, subset_n=1000) == 500
    assert spec.pairs_for("unet", n=1000, subset_n=1000) == 256
    assert spec.steps_for("unet") == 50 and spec.steps_for("exact") == 1000
    assert spec.models_for("lsun") == ("unet",) and spec.models_for("mnist") == ("exact", "unet")
    with pytest.raises(ConfigError, match="unknown model"):
        RegimesSpec(sampler_steps={"vae": 10})


def test_quality_gate_flags_inconsistent_labels_and_low_confidence():
    spec = RegimesSpec()
    assert quality_verdict(phi_t_min=1.0, confident_fraction=0.95, real_confident_fraction=0.99, spec=spec) \
        == (True, "ok")
    ok, reason = quality_verdict(phi_t_min=0.9, confident_fraction=0.7, real_confident_fraction=0.99,
                                 spec=spec)
    assert not ok and "phi(t_min)" in reason and "confident fraction" in reason
    ok, reason = quality_verdict(phi_t_min=1.0, confident_fraction=0.9, real_confident_fraction=float("nan"),
                                 spec=spec)
    assert not ok and "no held-out" in reason


def test_sweep_plan_pairs_models_and_names_its_chunks():
    """plan_sweep: exact and UNet sweeps of one dataset share their seed (a paired comparison) at every n;
    the workflow's per-model values win over the spec; the chunk key changes with any input's bytes; the
    UNet is measured only on its own training set."""
    from diffusion_regimes.regimes import plan_sweep

    spec = RegimesSpec(n_pairs={"exact": 1000, "unet": 256}, sampler_steps={"unet": 50})
    common = {"dataset": "mnist", "subset_n": 1000, "t_s_theory": 1.0, "t_c_entropy": 0.3, "base_seed": 0,
              "inputs_digest": "abc"}
    exact = plan_sweep(spec, model="exact", n=100, **common)
    unet = plan_sweep(spec, model="unet", n=1000, **common)
    assert exact.seed == unet.seed and exact.pairs == spec.n_pairs_prefix and unet.pairs == 256
    assert (exact.steps, unet.steps) == (1000, 50)
    assert plan_sweep(spec, model="unet", n=1000, **common, pairs=64, steps=20).pairs == 64
    assert plan_sweep(spec, model="exact", n=100, **{**common, "inputs_digest": "abd"}).chunk_key != \
        exact.chunk_key
    assert plan_sweep(spec, model="exact", n=100, **{**common, "dataset": "cifar10"}).seed != exact.seed
    with pytest.raises(ConfigError, match="trained on all 1000"):
        plan_sweep(spec, model="unet", n=100, **common)


# --- the sampler question ------------------------------------------------------------------------------


def test_every_sampler_runs_the_sweep_and_the_ode_has_no_clones():
    """Euler-Maruyama sweeps like the DDPM sampler (branches, phi); the ODE runs trunks only (no branch
    time, phi and the fits NaN) and, with the exact score, still ends on training points; the quality gate
    of a deterministic row rests on the confident fraction alone."""
    from diffusion_regimes.regimes import regimes_row

    spec = RegimesSpec(n_boot=50, strip_times=3, branch_uniform=4, branch_dense=0, branch_t_min=0.05)
    train = _two_clusters()
    common = {"score": EmpiricalScore(train.reshape(N, -1)), "training": train, "spec": spec, "n_pairs": 12,
              "steps": 100, "seed": 3, "labeller": _labeller,
              "times": spec.branch_times(t_speciation=0.5, t_collapse=0.2, schedule=DDPMSchedule())}
    sde = cloning_experiment(**common, sampler="euler_maruyama")
    assert sde.branch_times.size == 4 and sde.phi[0] == 1.0 and sde.summary()["sampler"] == "euler_maruyama"
    ode = cloning_experiment(**common, sampler="heun")
    summary = ode.summary()
    assert ode.branch_times.size == 0 and ode.phi.size == 0 and summary["sampler"] == "heun"
    assert np.isnan(summary["t_s_fit"]) and np.isnan(summary["t_c_phi_c_fit"])
    assert np.isnan(summary["phi_t_min"])
    assert summary["memorised_fraction"] == 1.0 and ode.t_collapse.shape == (12,)
    import pandas as pd

    entropy = pd.DataFrame({"n": [N], "d": [16], "alpha": [0.13], "t_c_entropy": [0.2],
                            "t_c_entropy_low": [0.1], "t_c_entropy_high": [0.3]})
    summary |= {"real_confident_fraction": 1.0, "classifier_accuracy": 1.0}
    row = regimes_row(dataset="toy", model="exact", summary=summary, entropy=entropy, lam=4.0, spec=spec,
                      seed=0)
    assert row["sampler"] == "heun" and row["quality_ok"] and row["quality"] == "ok"
    with pytest.raises(ConfigError, match="not valid"):
        cloning_experiment(**common, sampler="leapfrog")


def test_sampler_config_and_plans():
    """`samplers` lists ddpm first; other samplers run at the whole subset with n_pairs_sampler pairs and a
    chunk folder of their own."""
    from diffusion_regimes.regimes import plan_sweep

    with pytest.raises(ConfigError, match="ddpm"):
        RegimesSpec(samplers=("heun", "ddpm"))
    with pytest.raises(ConfigError, match="unknown model"):
        RegimesSpec(n_pairs_sampler={"gan": 3})
    spec = RegimesSpec(samplers=("ddpm", "heun"), n_pairs_sampler={"exact": 256, "unet": 64})
    common = {"dataset": "mnist", "subset_n": 1000, "t_s_theory": 1.0, "t_c_entropy": 0.3, "base_seed": 0,
              "inputs_digest": "abc", "n": 1000}
    ddpm, heun = (plan_sweep(spec, model="unet", sampler=s, **common) for s in ("ddpm", "heun"))
    assert heun.pairs == 64 and ddpm.pairs == spec.pairs_for("unet", n=1000, subset_n=1000)
    assert heun.chunk_key != ddpm.chunk_key and heun.seed == ddpm.seed
    with pytest.raises(ConfigError, match="compared at n = 1000"):
        plan_sweep(spec, model="exact", sampler="heun", **{**common, "n": 100})


def test_regimes_table_orders_samplers_as_configured():
    import pandas as pd

    from diffusion_regimes.regimes import REGIMES_COLUMNS, regimes_table

    keys = {"dataset": "m", "model": "exact", "n": 10}
    rows = [pd.DataFrame([dict.fromkeys(REGIMES_COLUMNS, 0) | keys | {"sampler": s}])
            for s in ("heun", "ddpm", "euler_maruyama")]
    assert list(regimes_table(rows)["sampler"]) == ["ddpm", "euler_maruyama", "heun"]


def test_per_dataset_sampler_pairs_and_law_keys():
    """samplers, n_pairs_by_dataset, law_resolutions and law_n_values also take a mapping dataset -> value
    (config/fashion.yaml); datasets left out keep the defaults."""
    spec = RegimesSpec(samplers={"mnist": ("ddpm", "heun")}, n_pairs={"exact": 1000, "unet": 256},
                       n_pairs_by_dataset={"fashion": {"exact": 384, "unet": 128}, "shirt": 300},
                       law_resolutions={"fashion": (32,)}, law_n_values={"fashion": (100, "all")})
    assert spec.samplers_for("mnist") == ("ddpm", "heun") and spec.samplers_for("fashion") == ("ddpm",)
    assert spec.pairs_for("exact", n=12000, subset_n=12000, dataset="fashion") == 384
    assert spec.pairs_for("unet", n=12000, subset_n=12000, dataset="fashion") == 128
    assert spec.pairs_for("unet", n=1000, subset_n=1000, dataset="shirt") == 300
    assert spec.pairs_for("exact", n=1000, subset_n=1000, dataset="mnist") == 1000
    assert spec.pairs_for("exact", n=100, subset_n=12000, dataset="fashion") == spec.n_pairs_prefix
    assert spec.law_resolutions_for("fashion") == (32,) and spec.law_resolutions_for("mnist") == (8, 16, 32)
    assert spec.law_n_for(subset_n=12000, dataset="fashion") == (100, 12000)
    assert spec.law_n_for(subset_n=1000, dataset="mnist") == (25, 50, 100, 300, 1000)
    with pytest.raises(ConfigError, match="ddpm"):
        RegimesSpec(samplers={"mnist": ("heun",)})


def test_nearest_checks_count_ddpm_steps_whatever_the_grid():
    from diffusion_regimes.preflight import preflight
    from diffusion_regimes.regimes import nearest_check_points
    from diffusion_regimes.sampler import DDPMAncestral

    full = DDPMAncestral.respaced(1000).ddpm_steps
    points = nearest_check_points(full, 50)
    assert [full[i] for i in points] == list(range(1000, -1, -50))  # k = 1000, 950, ..., 50, 0
    assert nearest_check_points(full, 1).tolist() == list(range(1001))
    # a respaced grid checks at every point with 1, and cannot honour 50 DDPM steps
    coarse = DDPMAncestral.respaced(100).ddpm_steps
    assert nearest_check_points(coarse, 1).size == 101
    with pytest.raises(ConfigError, match=r"nearest_check_every = 50 counts DDPM steps, but the 100-step "
                                          r"sampler's grid has no point at k = 50, 100"):
        nearest_check_points(coarse, 50)
    # the workflow refuses such a config before any job runs, naming the key of the grid
    config = {"regimes": {"nearest_check_every": 50, "sampler_steps": {"exact": 100}, "models": ["exact"]}}
    with pytest.raises(ConfigError, match=r"\[regimes\.sampler_steps\.exact = 100\]"):
        preflight(config)
    config["regimes"]["models"] = ["unet"]  # only the measured models' grids matter
    preflight(config)
    with pytest.raises(ConfigError, match=r"\[regimes\.law_steps = 250\]"):
        preflight({"regimes": {"nearest_check_every": 50, "law_datasets": ["mnist"], "law_steps": 250}})


def test_t_collapse_on_the_full_sampler_lies_on_the_checked_ddpm_steps():
    """1000 steps, checks every 50 DDPM steps: every t̂_C is the time of one of k = 1000, 950, ..., 0, and
    equals the every-step t̂_C rounded down to that grid (or above it, for an index that came back)."""
    train = _two_clusters()
    schedule = DDPMSchedule()
    results = {}
    for every in (1, 50):
        spec = RegimesSpec(n_boot=20, strip_times=2, chunk_pairs=6, branch_grid="steps", branch_every=250,
                           nearest_check_every=every)
        results[every] = cloning_experiment(
            score=EmpiricalScore(train.reshape(N, -1)), training=train, spec=spec, n_pairs=6, steps=1000,
            times=spec.branch_times(t_speciation=0.5, t_collapse=0.2, schedule=schedule), seed=3,
            labeller=_labeller)
    checked = {float(schedule.times[k]) for k in range(0, 1001, 50)}
    assert all(float(t) in checked for t in results[50].t_collapse)
    assert len({float(t) for t in results[1].t_collapse} - checked) > 0  # the fine check sees other steps
    # same noise (the checks draw none), so the same trajectories: t̂_C moves down to the checked step at
    # or below the last change, unless the index left and came back between two checks (then higher)
    for coarse, fine in zip(results[50].t_collapse, results[1].t_collapse, strict=True):
        below = max(t for t in checked if t <= fine + 1e-12)
        assert coarse == below or coarse > fine
