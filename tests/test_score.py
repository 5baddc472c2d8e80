"""The exact empirical score and the noise-predictor adapter against closed forms (docs/science.md
sections 1, 5)."""

import math

import pytest
import torch

from diffusion_regimes.sampler import DDPMAncestral, run_trajectories
from diffusion_regimes.schedule import DDPMSchedule, delta_t
from diffusion_regimes.score import EmpiricalScore, NoisePredictorScore


def _data(n=7, d=5, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, dtype=torch.float64, generator=gen), gen


def _brute_log_density(x, data, t):
    dt = delta_t(t)
    sq = ((x[:, None, :] - math.exp(-t) * data[None]) ** 2).sum(-1)
    logs = -sq / (2 * dt) - 0.5 * data.shape[1] * math.log(2 * math.pi * dt)
    return torch.logsumexp(logs, dim=1) - math.log(data.shape[0])


@pytest.mark.parametrize("t", [0.02, 0.3, 2.0])
def test_empirical_score_is_gradient_of_log_density(t):
    data, gen = _data()
    x = torch.randn(4, 5, dtype=torch.float64, generator=gen).requires_grad_(True)
    score = EmpiricalScore(data, precision="float64")  # the reference: float64 throughout
    logp = score.log_density(x, t)
    # the streamed log-density equals the direct log-sum-exp of the mixture (float64 rounding only)
    torch.testing.assert_close(logp, _brute_log_density(x.detach(), data, t), rtol=1e-12, atol=1e-10)
    (grad,) = torch.autograd.grad(logp.sum(), x)
    torch.testing.assert_close(score(x.detach(), t), grad, rtol=1e-10, atol=1e-8)


def test_chunking_does_not_change_the_score():
    data, gen = _data(n=23, d=6)
    x = torch.randn(5, 2, 3, dtype=torch.float64, generator=gen)  # image-shaped input, d = 6
    whole = EmpiricalScore(data, precision="float64")
    chunked = EmpiricalScore(data, max_chunk_bytes=16 * 5 * 3, precision="float64")  # 3 rows per chunk
    assert chunked._chunk_rows(5) == 3
    for t in (0.01, 0.5, 3.0):
        out = chunked(x, t)
        assert out.shape == x.shape
        # online softmax vs one block: identical up to float64 rounding
        torch.testing.assert_close(out, whole(x, t), rtol=1e-12, atol=1e-10)


def test_float32_input_comes_back_float32_and_t0_is_rejected():
    data, gen = _data()
    x = torch.randn(3, 5, generator=gen)
    assert EmpiricalScore(data)(x, 0.5).dtype == torch.float32
    with pytest.raises(ValueError):
        EmpiricalScore(data)(x, 0.0)


@pytest.mark.parametrize("precision", ["float64", "mixed"])
def test_single_training_point_backward_dynamics_ends_on_it(precision):
    """n = 1: the last DDPM step is noiseless and Delta_{t_1} = beta_1, so x(0) = a exactly."""
    a = torch.linspace(-1, 1, 8, dtype=torch.float64).reshape(1, 2, 2, 2)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(16, 2, 2, 2, dtype=torch.float64, generator=gen)
    integ = DDPMAncestral(DDPMSchedule(n_steps=100, beta_start=1e-3, beta_end=0.2))
    score = EmpiricalScore(a.reshape(1, -1), precision=precision)
    x0 = run_trajectories(x, integrator=integ, score=score, generator=gen)
    # float64: rounding only.  mixed: the one weight is exactly 1, so x(0) is the float32 copy of a
    # (relative error <= u = 2^-24, |a| <= 1) up to float64 rounding
    atol = 1e-9 if precision == "float64" else 2.0**-24 + 1e-9
    torch.testing.assert_close(x0, a.expand_as(x0), rtol=0, atol=atol)


def test_noise_predictor_adapter_reproduces_gaussian_score():
    """Data N(0, s2 I): the exact noise predictor is eps = sqrt(1-abar) x / (s2 abar + 1 - abar), whose
    score is -x / (s2 e^{-2t} + Delta_t) because abar(k) = e^{-2 t(k)}."""
    s2 = 0.3
    sched = DDPMSchedule()

    def eps_model(x, k):
        assert x.dtype == torch.float32 and k.dtype == torch.long and x.shape == (6, 1, 4, 4)
        # float64 inside the dummy: 1 - abar(1) = 1e-4 would lose 3 digits in float32
        abar = sched.alpha_bar[k][:, None, None, None]
        return (torch.sqrt(1 - abar) * x.double() / (s2 * abar + 1 - abar)).float()

    adapter = NoisePredictorScore(eps_model, image_shape=(1, 4, 4), schedule=sched)
    x = torch.randn(6, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    for k in (1, 10, 500, 1000):
        t = sched.time_of_step(k)
        out = adapter(x, t)
        assert out.shape == x.shape and out.dtype == torch.float64
        exact = -x / (s2 * math.exp(-2 * t) + delta_t(t))
        # the network's input and output are float32: relative error ~1e-7
        torch.testing.assert_close(out, exact, rtol=1e-5, atol=1e-5)


# --- mixed precision (float32 products, float64 accumulation) against the float64 reference ------------

U32 = 2.0**-24
SCHED = DDPMSchedule()


def _images(n=300, seed=5):
    """Image-shaped float32 training set like a centred MNIST subset: two cluster templates plus pixel
    noise, (n, 1, 32, 32), mean square per pixel ~0.07 (|a|^2 ~ 70 as on the MNIST 1/8 subset)."""
    gen = torch.Generator().manual_seed(seed)
    templates = (torch.rand(2, 1, 32, 32, generator=gen) < 0.15).to(torch.float32)
    labels = torch.arange(n) % 2
    pixels = (templates[labels] * (0.6 + 0.4 * torch.rand(n, 1, 32, 32, generator=gen))
              + 0.1 * torch.rand(n, 1, 32, 32, generator=gen)).clamp(0, 1)
    return pixels - pixels.mean(), gen


def _states(images, t, gen, batch=64):
    """States at time t: noised training points, half of them started midway between two training points
    (near-ties of the softmax, where weight errors show)."""
    a = images.to(torch.float64)
    mu = torch.randint(0, a.shape[0], (batch, 2), generator=gen)
    centre = torch.cat([a[mu[: batch // 2, 0]], 0.5 * (a[mu[batch // 2:, 0]] + a[mu[batch // 2:, 1]])])
    noise = torch.randn(centre.shape, dtype=torch.float64, generator=gen)
    return centre * math.exp(-t) + math.sqrt(delta_t(t)) * noise


@pytest.mark.parametrize("k", [1, 60, 100, 300, 600, 1000])
def test_mixed_precision_score_within_its_bound(k):
    """The documented bound of EmpiricalScore: |delta F| <= e^{-t}/Delta_t [2 eps sum_mu w_mu |a_mu - m|
    + (sqrt(n) + 2) u max|a|], checked per state on image-shaped inputs from t(k=1) ~ 5e-5 to t(k=1000).
    Where eps(t) > logit_tol (k = 1) the call must be the float64 reference itself."""
    images, gen = _images()
    t = SCHED.time_of_step(k)
    x = _states(images, t, gen)
    fast = EmpiricalScore(images.reshape(images.shape[0], -1))
    ref = EmpiricalScore(images.reshape(images.shape[0], -1), precision="float64")
    out, want = fast(x, t), ref(x, t)
    assert out.shape == x.shape
    eps = fast.logit_error(x, t)
    if k == 1:
        assert eps > fast.logit_tol and not fast.uses_float32(x, t)
        assert torch.equal(out, want)
        return
    assert fast.uses_float32(x, t) and not torch.equal(out, want)
    a = ref.data
    flat = x.reshape(x.shape[0], -1)
    weights = torch.softmax(-torch.cdist(flat, a * math.exp(-t)) ** 2 / (2 * delta_t(t)), dim=1)  # (B, n)
    m = weights @ a
    spread = (weights * torch.cdist(m, a)).sum(dim=1)  # sum_mu w_mu |a_mu - m|, (B,)
    n = a.shape[0]
    bound = math.exp(-t) / delta_t(t) * (2 * eps * spread + (math.sqrt(n) + 2) * U32 * a.norm(dim=1).max())
    err = (out - want).reshape(x.shape[0], -1).norm(dim=1)
    # plus float64 rounding of the reference (relative 1e-12 of |F|)
    assert torch.all(err <= bound + 1e-12 * want.reshape(x.shape[0], -1).norm(dim=1)), (err / bound).max()


@pytest.mark.parametrize("k", [1, 10, 60, 300, 1000])
def test_float32_logit_error_estimate_covers_the_measured_error(k):
    """The estimate eps(t) of online_softmax.float32_logit_error against the float32 logits of the fast
    path, on the worst case for the cross term: states aligned with training points (x ~ a e^{-t})."""
    images, gen = _images()
    t = SCHED.time_of_step(k)
    a = images.reshape(images.shape[0], -1).to(torch.float64)
    x = _states(images, t, gen).reshape(64, -1)
    dt, decay = delta_t(t), math.exp(-t)
    bias = -(decay**2) * (a * a).sum(dim=1) / (2 * dt)
    exact = torch.addmm(bias, x, a.T, alpha=decay / dt)
    single = torch.addmm(bias.float(), x.float(), a.float().T, alpha=decay / dt).double()
    measured = (single - exact).abs().max().item()
    estimate = EmpiricalScore(a).logit_error(x, t)
    assert measured <= estimate
    # the estimate is not vacuous: within a factor 100 of the measured error
    assert estimate <= 100 * measured


def test_unknown_precision_is_a_config_error():
    from diffusion_regimes.errors import ConfigError

    with pytest.raises(ConfigError, match="float64"):
        EmpiricalScore(torch.zeros(2, 3), precision="float16")


def test_noise_predictor_micro_batches_give_the_same_score():
    """Cutting a batch into micro-batches changes nothing but speed (per-sample network, eval mode)."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 12)).eval()

    class Eps(torch.nn.Module):
        def forward(self, x, k):
            return net(x).reshape(x.shape) * (1 + k[:, None, None, None].float() / 1000)

    x = torch.randn(10, 3, 2, 2)
    whole = NoisePredictorScore(Eps(), image_shape=(3, 2, 2), micro_batch=10)(x, 0.3)
    for piece in (1, 3, 64):
        parts = NoisePredictorScore(Eps(), image_shape=(3, 2, 2), micro_batch=piece)(x, 0.3)
        torch.testing.assert_close(parts, whole, rtol=1e-6, atol=1e-7)
