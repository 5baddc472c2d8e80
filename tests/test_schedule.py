import math

import pytest
import torch

from diffusion_regimes.schedule import DDPMSchedule, delta_t, forward_noise, ou_time_grid


def test_delta_t_limits_and_tensor_form():
    assert delta_t(0.0) == 0.0
    assert delta_t(50.0) == pytest.approx(1.0)
    t = torch.tensor([0.1, 1.0], dtype=torch.float64)
    assert torch.allclose(delta_t(t), 1 - torch.exp(-2 * t))


def test_ddpm_schedule_matches_definition():
    s = DDPMSchedule()
    assert s.betas.dtype == torch.float64 and s.betas.shape == (1001,)
    assert s.betas[1] == pytest.approx(1e-4) and s.betas[1000] == pytest.approx(2e-2)
    # alpha_bar(k) = prod (1 - beta_s), evaluated independently in log space
    log_ab = sum(math.log(1 - (1e-4 + (2e-2 - 1e-4) * (k - 1) / 999)) for k in range(1, 1001))
    assert s.alpha_bar[1000].item() == pytest.approx(math.exp(log_ab), rel=1e-10)
    # docs/science.md section 1: k = 1000 is t ~ 5.05
    assert s.time_of_step(1000) == pytest.approx(5.05, abs=0.01)
    assert s.time_of_step(0) == 0.0
    assert torch.all(torch.diff(s.times) > 0)
    assert s.step_of_time(s.time_of_step(500)) == 500


def test_forward_noise_moments():
    a = torch.full((200_000, 1), 2.0, dtype=torch.float64)
    x = forward_noise(a, 0.7, generator=torch.Generator().manual_seed(0))
    # mean a e^{-t}, variance Delta_t; 5 standard errors of the sample mean / variance
    se_mean = math.sqrt(delta_t(0.7) / a.shape[0])
    assert abs(x.mean().item() - 2 * math.exp(-0.7)) < 5 * se_mean
    assert abs(x.var().item() - delta_t(0.7)) < 5 * delta_t(0.7) * math.sqrt(2 / a.shape[0])


def test_ou_grid():
    g = ou_time_grid(t_max=10.0, n_steps=1000)
    assert g.shape == (1001,) and g[0] == 10.0 and g[-1] == 0.0
    with pytest.raises(ValueError):
        ou_time_grid(t_max=0.0, n_steps=10)
