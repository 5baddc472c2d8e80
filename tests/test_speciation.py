"""The speciation stage: Gaussian-class predictor, equal-mean and nested mixtures (docs/science.md,
"Speciation as Bayes classification")."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from diffusion_regimes import theory
from diffusion_regimes.measures import crossing_time
from diffusion_regimes.sampler import EulerMaruyama, clone_sweep
from diffusion_regimes.score import GaussianMixtureScore
from diffusion_regimes.speciation import (
    GaussianClasses,
    GMConfig,
    PredictorConfig,
    RadialMixtureScore,
    chi2_from_normal,
    class_log_likelihoods,
    equal_mean_cloning,
    equal_mean_sweep,
    equal_mean_t_speciation,
    equal_mean_uturns,
    fit_slope,
    gaussian_classes_uturns,
    gm_experiment,
    mean_separated_model,
    nested_sweep,
    pair_predictions,
    predicted_curve,
    same_class_probability,
)


@pytest.fixture(autouse=True)
def _one_thread():
    # the GM sweeps step small tensors a thousand times: a second thread only adds synchronisation (25 s
    # instead of 1.4 s for the Monte-Carlo test on a loaded 2-core host)
    torch.set_num_threads(1)
    yield


def _symmetric(d: int) -> tuple[GaussianClasses, torch.Tensor]:
    m = torch.ones(d, dtype=torch.float64)
    return GaussianClasses.isotropic(torch.stack([m, -m]), [1.0, 1.0]), m


def test_posterior_and_score_reduce_to_the_two_cluster_closed_form():
    # p(+|x) = s(2 e^{-t} m.x / Gamma_t) and the score of docs/science.md section 3, to rounding
    model, m = _symmetric(32)
    x = torch.randn(50, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * 3
    for t in (0.3, 1.7, 4.0):
        gam = theory.gamma(t).item()
        ref = torch.sigmoid(2 * math.exp(-t) * (x @ m) / gam)
        assert torch.allclose(model.posterior(x, t)[:, 0], ref, atol=1e-12)
        assert torch.allclose(model.score(x, t), GaussianMixtureScore(m)(x, t), atol=1e-10)


def test_fitted_classes_give_the_same_posterior_as_their_dense_form():
    gen = torch.Generator().manual_seed(2)
    a = torch.randn(400, 5, dtype=torch.float64, generator=gen) @ torch.randn(5, 5, dtype=torch.float64,
                                                                            generator=gen)
    labels = torch.arange(400) % 2
    a[labels == 1] += 2.0
    model = GaussianClasses.fit(a, labels)
    x = torch.randn(7, 5, dtype=torch.float64, generator=gen)
    t = 0.8
    dense = []
    for c in range(2):
        xc = a[labels == c]
        cov = torch.cov(xc.T)
        s = math.exp(-2 * t) * cov + (1 - math.exp(-2 * t)) * torch.eye(5, dtype=torch.float64)
        dist = torch.distributions.MultivariateNormal(math.exp(-t) * xc.mean(0), covariance_matrix=s)
        dense.append(dist.log_prob(x))
    ref = torch.softmax(torch.stack(dense, 1), dim=1)
    assert torch.allclose(model.posterior(x, t), ref, atol=1e-10)


def test_batched_log_likelihoods_equal_the_direct_ones():
    # the projections-once route of class_log_likelihoods against log_likelihoods of the noised images
    gen = torch.Generator().manual_seed(3)
    a = torch.randn(300, 6, dtype=torch.float64, generator=gen) * torch.linspace(0.2, 2.0, 6)
    labels = torch.arange(300) % 3
    a += labels[:, None].to(torch.float64)
    model = GaussianClasses.fit(a, labels)
    times = np.array([0.1, 0.9, 2.5])
    ll = class_log_likelihoods(model, a[:20], times, generator=torch.Generator().manual_seed(9))
    z = torch.randn(20, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(9))
    for j, t in enumerate(times):
        x = math.exp(-t) * a[:20] + math.sqrt(1 - math.exp(-2 * t)) * z
        direct = model.log_likelihoods(x, t) - model.log_priors
        assert torch.allclose(ll[:, :, j].T, direct, atol=1e-9)


def test_predicted_curve_is_the_papers_phi_for_the_symmetric_mixture():
    # E_{x_t}[sum_c p_c^2] over the mixture's own samples = the 1-D integral of section 3; tolerance five
    # bootstrap-free standard errors of the mean of sum p^2 over 2 x 4000 noised points
    d = 64
    model, _ = _symmetric(d)
    gen = torch.Generator().manual_seed(4)
    a, _ = model.sample_pt(4000, t=0.0, generator=gen)
    times = np.linspace(1.0, 3.5, 11)
    ll = class_log_likelihoods(model, a, times, generator=gen)
    values = same_class_probability(ll)
    se = values.std(dim=0) / math.sqrt(values.shape[0])
    ref = theory.cloning_probability(times, d=d)
    assert np.all(np.abs(values.mean(dim=0).numpy() - ref) < 5 * se.numpy() + 1e-3)
    curve = predicted_curve(ll, times, n_boot=50, generator=gen)
    assert abs(curve.t_s - crossing_time(times, ref, 0.775)) < 0.05


def test_predictor_agrees_with_monte_carlo_cloning_on_a_small_anisotropic_mixture():
    # two classes with different means and different (rotated, anisotropic) covariances: the exact-score
    # cloning simulation and the predictor's E[sum p^2] over noised data agree within statistics + Euler bias
    gen = torch.Generator().manual_seed(5)
    d = 6
    rot = torch.linalg.qr(torch.randn(d, d, dtype=torch.float64, generator=gen))[0]
    means = torch.zeros(2, d, dtype=torch.float64)
    means[0, 0], means[1, 0] = 3.0, -3.0
    values = torch.stack([torch.linspace(0.3, 1.5, d), torch.linspace(1.2, 0.4, d)]).to(torch.float64)
    model = GaussianClasses(means, values, torch.stack([torch.eye(d, dtype=torch.float64), rot]),
                            torch.full((2,), -math.log(2), dtype=torch.float64))
    branch = (0.3, 0.6, 0.9, 1.2, 1.6, 2.0)
    integrator = EulerMaruyama.uniform(t_max=5.0, n_steps=500)
    idx = [int(torch.argmin((integrator.times - b).abs())) for b in branch]
    x0, _ = model.sample_pt(1500, t=5.0, generator=gen)
    sweep = clone_sweep(x0, integrator=integrator, score=model.score, branch_indices=idx, generator=gen)
    trunk = model.classify(sweep.trunk)
    clones = model.classify(sweep.clones.reshape(-1, d)).reshape(len(idx), -1)
    measured = (clones == trunk).to(torch.float64).mean(dim=1).flip(0).numpy()  # ascending branch times
    data, _ = model.sample_pt(5000, t=0.0, generator=gen)
    predicted = same_class_probability(class_log_likelihoods(model, data, np.array(branch),
                                                             generator=gen)).mean(dim=0).numpy()
    # binomial SE <= 0.5/sqrt(3000) ~ 0.009 per point; Euler step 0.01 biases phi by O(0.01)
    assert np.max(np.abs(measured - predicted)) < 0.045
    assert measured[0] > 0.9 and measured[-1] < 0.75


def test_pair_predictions_orders_well_and_badly_separated_pairs():
    gen = torch.Generator().manual_seed(6)
    n = 600
    base = torch.randn(3 * n, 10, dtype=torch.float64, generator=gen)
    labels = torch.arange(3 * n) % 3
    base[labels == 1, 0] += 6.0  # far from class 0
    base[labels == 2, 0] += 2.0  # close to class 0
    table, curves = pair_predictions(base, labels, ["a", "b", "c"], cfg=PredictorConfig(images_per_class=300,
                                     n_boot=20), seed=0, source="toy")
    t = dict(zip(zip(table.class_a, table.class_b, strict=True), table.t_s_gauss, strict=True))
    assert t[("a", "b")] > t[("a", "c")] + 0.5
    assert len(curves) == 3 * PredictorConfig().n_times


def test_chi2_from_normal_moments():
    z = torch.randn(400_000, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    u = chi2_from_normal(63, z)
    assert abs(u.mean().item() - 63) < 0.05 and abs(u.var().item() / 126 - 1) < 0.02


def test_equal_mean_closed_form_against_sampling_and_its_large_k_limit():
    k, variances = 128, (1.5, 0.5)
    gen = torch.Generator().manual_seed(8)
    score = RadialMixtureScore(variances, k)
    for t in (0.5, 1.2):
        gam = [theory.gamma(t, sigma=math.sqrt(v)).item() for v in variances]
        rho = torch.cat([g * chi2_from_normal(k, torch.randn(20000, dtype=torch.float64, generator=gen))
                         for g in gam])
        p = torch.softmax(score.log_weights(rho, t), dim=1)
        mc = (p * p).sum(dim=1).mean().item()
        assert abs(mc - float(equal_mean_cloning(t, k=k, variances=variances))) < 0.01
    fine = np.linspace(0.01, 5, 3000)
    big = crossing_time(fine, equal_mean_cloning(fine, k=1 << 16, variances=variances), 0.775)
    assert abs(big - float(equal_mean_t_speciation(1 << 16, variances=variances))) < 0.01


def test_radial_engine_matches_the_full_simulation_and_the_theory():
    branch = (0.2, 0.5, 0.8, 1.2)
    kw = dict(k=32, variances=(1.5, 0.5), pairs=1200, branch=branch, t_max=4.0, n_steps=400)
    reduced, times = equal_mean_sweep(generator=torch.Generator().manual_seed(10), engine="reduced", **kw)
    full, _ = equal_mean_sweep(generator=torch.Generator().manual_seed(11), engine="full", **kw)
    ref = equal_mean_cloning(times, k=32, variances=(1.5, 0.5))
    # two independent binomial curves (SE <= 0.015 each) and the O(0.01) Euler bias
    assert np.max(np.abs(reduced.mean(1).numpy() - full.mean(1).numpy())) < 0.06
    assert np.max(np.abs(reduced.mean(1).numpy() - ref)) < 0.05


def test_nested_mixture_has_two_speciation_times():
    group, same, times = nested_sweep(d=256, group_mu=1.0, class_mu=0.35, pairs=2000,
                                      branch=tuple(0.25 * i for i in range(1, 17)), t_max=6.0, n_steps=600,
                                      generator=torch.Generator().manual_seed(12))
    t_group = crossing_time(times, group.mean(1).numpy(), 0.775)
    t_class = crossing_time(times, (same.mean(1) / group.mean(1)).numpy(), 0.775)
    # theory: 1/2 log(d mu^2) up to the O(0.05) finite-size offset of the crossing
    assert abs(t_group - 0.5 * math.log(256)) < 0.25
    assert abs(t_class - 0.5 * math.log(256 * 0.35**2)) < 0.25


def test_uturns_return_to_the_class_with_the_cloning_probability():
    # Exact score: a U-turn from class c at time t ends in c with probability p(c | x_t), so the return
    # curve is E_c E_{x_t|c} p(c | x_t) = E_{x_t} sum_c p(c | x_t)^2 = phi(t), the cloning curve in closed
    # form.  Mean-separated mixture (1-D reduction, |m|^2 = d) and equal-mean classes (radial engine).
    branch = (0.2, 0.6, 1.0, 1.4, 1.8, 2.2, 2.6)
    gen = torch.Generator().manual_seed(13)
    begun, ends, times = gaussian_classes_uturns(mean_separated_model(64), starts=3000, branch=branch,
                                                 t_max=4.0, n_steps=800, generator=gen)
    assert np.allclose(times, branch)
    back = (begun == ends).to(torch.float64).mean(dim=1).numpy()
    # binomial SE <= 0.5 / sqrt(3000) = 0.009 per point, Euler bias O(eta) = O(0.005): 4 SE
    assert np.max(np.abs(back - theory.cloning_probability(times, d=64))) < 0.04
    assert back[0] > 0.99 and back[-1] < 0.8
    back, times = equal_mean_uturns(k=64, variances=(1.5, 0.5), starts=3000, branch=branch, t_max=4.0,
                                    n_steps=800, generator=torch.Generator().manual_seed(14))
    ref = equal_mean_cloning(times, k=64, variances=(1.5, 0.5))
    assert np.max(np.abs(back.mean(dim=1).numpy() - ref)) < 0.04


def test_gm_experiment_measures_both_protocols_and_their_slopes():
    cfg = GMConfig(dims=(64, 256), pairs=240, n_steps=200, branch_step=0.25, branch_max=4.0, n_boot=20,
                   check_dim=0, uturn_starts=240)
    result = gm_experiment(cfg, seed=0)
    assert set(result.times.protocol) == {"cloning", "uturn"}
    assert set(result.slopes.protocol) == {"cloning", "uturn"}
    both = result.times.pivot_table(index=["family", "d"], columns="protocol", values="t_S")
    ok = both.dropna()
    # one closed-form curve, two independent measurements of 240 each: a crossing's SE is <= 0.1 here, so
    # the difference of two has SE <= 0.14; 0.4 is ~3 SE for the largest of 10 differences
    diff = (ok.cloning - ok.uturn).abs()
    assert len(ok) >= 8 and float(diff.max()) < 0.4 and float(diff.mean()) < 0.15
    none = gm_experiment(GMConfig(dims=(64, 256), pairs=40, n_steps=100, branch_step=0.5, branch_max=4.0,
                                  n_boot=10, check_dim=0, uturn_starts=0), seed=0)
    assert set(none.times.protocol) == {"cloning"}


def test_fit_slope_recovers_a_planted_slope():
    log_d = np.log(np.array([64, 256, 1024, 4096.0]))
    t_s = 0.25 * log_d - 0.7
    reps = t_s[None, :] + np.random.default_rng(0).normal(0, 0.01, (200, 4))
    slope, lo, hi, intercept = fit_slope(log_d, t_s, reps)
    assert abs(slope - 0.25) < 1e-12 and lo < 0.25 < hi and hi - lo < 0.02 and abs(intercept + 0.7) < 1e-12


def test_predictor_table_and_rms():
    import pandas as pd

    from diffusion_regimes.speciation import predictor_table, rms_table

    predictions = pd.DataFrame({"source": ["f", "f", "f"], "class_a": ["a", "a", "b"],
                                "class_b": ["b", "c", "c"],
                                "t_s_lambda": [1.0, 1.2, 1.4], "t_s_delta": [0.9, 1.0, 1.1],
                                "t_s_gauss": [0.8, 1.1, 0.7], "t_s_gauss_low": 0.0, "t_s_gauss_high": 2.0})
    measured = pd.DataFrame({"source": ["f", "f"], "class_a": ["a", "b"], "class_b": ["b", "c"], "n": 10,
                             "pairs": 4, "t_s_crossing": [0.8, 0.9], "t_s_fit": [0.85, 0.95],
                             "sweep_seconds": 1.0})
    table = predictor_table(predictions, measured)
    assert len(table) == 3 and table["t_s_crossing"].isna().sum() == 1
    rms = rms_table(table, n_boot=50, seed=0).set_index(["predictor", "against"])
    row = rms.loc[("t_s_gauss", "t_s_crossing")]
    assert row["pairs"] == 2 and abs(row["rms"] - math.sqrt((0.0**2 + 0.2**2) / 2)) < 1e-12
    assert row["low"] <= row["rms"] <= row["high"]
    assert abs(rms.loc[("t_s_lambda", "t_s_crossing"), "mean_error"] - 0.35) < 1e-12
