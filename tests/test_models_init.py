"""Initialisation by regime (gnode.models.init): the critical gain, the spectrum of the linearisation at the
origin over many random draws, and trajectories started near the origin solved with gnode.solve.

Finite-size tolerances (measured; see the numbers in each test). With x := tau * Re(lambda_lead) / G(0), the
mean-field value is rho - 1 (-0.5, 0, +1 for the default gains 0.5, 1, 2):
  N = 256, 8 draws (default run): critical |mean x| <= 0.1 and every draw |x| <= 0.3; stable every x < -0.3;
    chaotic every x > +0.5. Measured at N = 256 over 10 draws: critical mean -0.006 (L=1), -0.05 (L=2),
    sd 0.04-0.07; stable <= -0.44; chaotic >= +0.68.
  N = 1000, 10 draws (slow): critical |mean x| <= 0.05 (L <= 2), 0.08 (L = 3), every draw |x| <= 0.2.
    Measured (same seeds): critical mean +0.004 / -0.016 / -0.016 for L = 1 / 2 / 3 (sd 0.021 / 0.036 /
    0.034), ReLU rate network -0.010; stable -0.498 .. -0.508; chaotic +0.967 .. +1.007.
  Trajectories, NeuralODE N = 400, T = 30 (slow): rms |h(T)|/|h(0)| 7.9e-8 / 0.26 / 675 against the linear
    mean field 8.3e-8 / 0.23 / (saturated).
The root-mean-square radius sqrt(tr(J_F J_F^T)/N), which the theory predicts to be rho, is within 3 % on
average over the draws (each draw within 15 %: with ReLU layers the active fraction fluctuates).
"""

from __future__ import annotations

import math

import pytest
import torch

import gnode
from gnode.models import ElmanRNN, GatedNODE, NeuralODE, critical_gain, origin_jacobian
from gnode.models.init import init_network_, layer_gains, origin_rate, resolve_gain

D = torch.float64
GAINS = {"stable": 0.5, "critical": 1.0, "chaotic": 2.0}


# ---- the formula -------------------------------------------------------------------------------------------


def test_critical_gain_formula():
    # L = 1 with tanh: Sompolinsky et al.'s g_c = 1; each ReLU layer needs a factor sqrt(2)
    assert critical_gain(GatedNODE(8, depth_F=1).F) == pytest.approx(1.0)
    assert critical_gain(GatedNODE(8, depth_F=2).F) == pytest.approx(math.sqrt(2))
    assert critical_gain(GatedNODE(8, depth_F=3, phi_h="identity").F) == pytest.approx(2.0)
    assert critical_gain(GatedNODE(8, depth_F=3, phi_a="tanh").F) == pytest.approx(1.0)
    assert critical_gain(ElmanRNN(8, phi="relu").F) == pytest.approx(math.sqrt(2))  # relu(h) read by W
    # per layer: rho^(1/L) / sqrt(E[phi'^2]) -- the norm is kept through each ReLU layer (He)
    assert layer_gains(GatedNODE(8, depth_F=2).F, 0.25) == pytest.approx([0.5 * math.sqrt(2), 0.5])


def test_resolve_gain_defaults_and_checks():
    assert [resolve_gain(r, None) for r in GAINS] == [0.5, 1.0, 2.0]
    assert resolve_gain("stable", 0.9) == 0.9 and resolve_gain("chaotic", 1.2) == 1.2
    with pytest.raises(ValueError, match="finite number >= 0"):
        resolve_gain("stable", float("nan"))


def test_weights_have_the_stated_variance_and_zero_biases():
    n, w = 300, 500
    m = GatedNODE(n, 4, depth_F=2, width_F=w, init="chaotic", generator=torch.Generator().manual_seed(0), dtype=D)
    g0, g1 = layer_gains(m.F, 2.0)
    L0, L1 = m.F.layers
    # sample variance of 150 000 Gaussians: relative standard error sqrt(2/150000) = 0.4 %
    assert L0.weight.var().item() * n == pytest.approx(g0**2, rel=0.03)
    assert L1.weight.var().item() * w == pytest.approx(g1**2, rel=0.03)
    assert L0.input_weight.var().item() * 4 == pytest.approx(1.0, rel=0.1)
    assert all(torch.equal(la.bias, torch.zeros_like(la.bias)) for net in (m.F, m.G) for la in net.layers)
    t, zero = torch.zeros(1, dtype=D), torch.zeros(1, n, dtype=D)
    assert torch.equal(m(t, zero), zero)  # the origin is a fixed point
    torch.testing.assert_close(m.gates(t, zero), torch.full((1, n), 0.5, dtype=D))  # G(0) = sigmoid(0)


def test_same_generator_seed_gives_the_same_model():
    a = GatedNODE(6, 2, depth_F=2, generator=torch.Generator().manual_seed(3))
    b = GatedNODE(6, 2, depth_F=2, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a.flat_parameters(), b.flat_parameters())


# ---- the spectrum at the origin --------------------------------------------------------------------------


def scaled_leading_real_parts(make, draws: int) -> tuple[torch.Tensor, torch.Tensor]:
    """x = tau Re(lambda_lead) / G(0) (mean field: rho - 1) and the rms radius of J_F, per draw."""
    xs, radii = [], []
    for seed in range(draws):
        g = torch.Generator().manual_seed(seed)
        m = make(g)
        J = origin_jacobian(m, generator=g)
        rate = origin_rate(m)  # G(0) / tau
        xs.append(torch.linalg.eigvals(J).real.max() / rate)
        JF = J / rate + torch.eye(m.n, dtype=D)
        radii.append((JF.square().sum() / m.n).sqrt())
    return torch.stack(xs), torch.stack(radii)


def check_regime(regime, xs, radii, *, mean_tol, draw_tol):
    rho = GAINS[regime]
    # the fraction of active ReLU units along the direction fluctuates per draw (N = 256: ~3 %), so each
    # draw's radius is within 15 % and the mean over draws within 3 %
    assert (radii.mean() / rho - 1).abs() < 0.03 and (radii / rho - 1).abs().max() < 0.15, radii
    if regime == "stable":
        assert xs.max() < -0.3, xs
    elif regime == "chaotic":
        assert xs.min() > 0.5, xs
    else:
        assert xs.mean().abs() <= mean_tol and xs.abs().max() <= draw_tol, xs


@pytest.mark.parametrize("regime", list(GAINS))
@pytest.mark.parametrize("depth", [1, 2])
def test_leading_eigenvalue_at_origin_by_regime(depth, regime):
    make = lambda g: GatedNODE(256, 3, depth_F=depth, depth_G=depth, init=regime, generator=g, dtype=D)
    xs, radii = scaled_leading_real_parts(make, draws=8)
    check_regime(regime, xs, radii, mean_tol=0.1, draw_tol=0.3)


@pytest.mark.slow
@pytest.mark.parametrize("regime", list(GAINS))
@pytest.mark.parametrize("model", ["gnode-L1", "gnode-L2", "gnode-L3", "node-L2-identity", "elman-rate-relu"])
def test_leading_eigenvalue_at_origin_by_regime_large_n(model, regime):
    n = 1000
    make = {
        "gnode-L1": lambda g: GatedNODE(n, 3, init=regime, generator=g, dtype=D),
        "gnode-L2": lambda g: GatedNODE(n, 3, depth_F=2, depth_G=2, width_F=700, init=regime, generator=g, dtype=D),
        "gnode-L3": lambda g: GatedNODE(n, 3, depth_F=3, init=regime, generator=g, dtype=D),
        "node-L2-identity": lambda g: NeuralODE(n, 3, depth=2, phi_h="identity", init=regime, generator=g, dtype=D),
        "elman-rate-relu": lambda g: ElmanRNN(n, 3, phi="relu", init=regime, generator=g, dtype=D),
    }[model]
    xs, radii = scaled_leading_real_parts(make, draws=10)
    check_regime(regime, xs, radii, mean_tol=0.08 if model == "gnode-L3" else 0.05, draw_tol=0.2)


def test_half_wave_rectification_matters():
    """Gains that ignore ReLU's mean-square slope (g_l = 1 per layer) give radius 1/sqrt(2) per ReLU layer:
    the network would start stable, not critical."""
    xs, radii = scaled_leading_real_parts(lambda g: _naive(g), draws=4)
    assert (radii.mean() * math.sqrt(2) - 1).abs() < 0.03
    assert xs.max() < -0.15


def _naive(g):
    m = GatedNODE(256, 0, depth_F=2, generator=g, dtype=D)
    init_network_(m.F, [1.0, 1.0], g)
    return m


# ---- trajectories from near the origin ------------------------------------------------------------------


def growth_ratios(make, draws: int, n: int, T: float, batch: int = 16) -> torch.Tensor:
    """|h(T)| / |h(0)| for trajectories from h(0) ~ 1e-3 N(0, I), solved with Tsit5 (float64)."""
    out = []
    for seed in range(draws):
        g = torch.Generator().manual_seed(100 + seed)
        m = make(g)
        h0 = 1e-3 * torch.randn(batch, n, generator=g, dtype=D)
        prob = gnode.ODEProblem(m, h0, (0.0, T))
        with torch.no_grad():
            sol = gnode.solve(prob, gnode.Tsit5(), saveat=torch.tensor([0.0, T], dtype=D), reltol=1e-5, abstol=1e-14)
        out.append(sol.u[:, -1].norm(dim=1) / sol.u[:, 0].norm(dim=1))
    return torch.cat(out)


def linear_mean_field_ratio(rho: float, t_eff: float) -> float:
    """sqrt(E|h(t)|^2 / |h(0)|^2) for dh/dt = (J_F - I) h with a Ginibre J_F of radius rho, t in units of
    tau / G(0): sum_k (rho t)^(2k) / k!^2 e^(-2t) = e^(-2t) I_0(2 rho t)."""
    return math.sqrt(
        float(torch.special.i0e(torch.tensor(2 * rho * t_eff, dtype=D))) * math.exp(-2 * t_eff * (1 - rho))
    )


def check_trajectories(regime, r, prediction=None):
    if regime == "stable":
        assert r.max() < 1e-3, r  # exponential decay (measured ~1e-5 at T = 40)
    elif regime == "chaotic":
        assert r.min() > 100, r  # grows until tanh saturates (measured ~700)
    else:
        assert r.min() > 1e-3 and r.max() < 10, r  # persists: neither decays exponentially nor blows up
    if prediction is not None:
        rms = r.square().mean().sqrt().item()
        assert prediction / 2 < rms < 2 * prediction, (rms, prediction)


@pytest.mark.parametrize("regime", list(GAINS))
def test_trajectories_near_origin_decay_persist_grow(regime):
    """N = 200, L = 1, T = 40 (G(0) = 1/2, so 20 time constants). Mean-field rms ratio: stable 1.4e-5,
    critical (4 pi 20)^(-1/4) = 0.25; measured 1.2e-5 and 0.18 (finite N) -- checked within a factor 2."""
    make = lambda g: GatedNODE(200, 0, init=regime, generator=g, dtype=D)
    r = growth_ratios(make, draws=1, n=200, T=40.0)
    pred = None if regime == "chaotic" else linear_mean_field_ratio(GAINS[regime], 20.0)
    check_trajectories(regime, r, pred)


@pytest.mark.slow
@pytest.mark.parametrize("regime", list(GAINS))
@pytest.mark.parametrize("depth", [2, 3])
def test_trajectories_near_origin_deep_relu(depth, regime):
    make = lambda g: GatedNODE(300, 0, depth_F=depth, depth_G=depth, init=regime, generator=g, dtype=D)
    check_trajectories(regime, growth_ratios(make, draws=3, n=300, T=40.0))


@pytest.mark.slow
@pytest.mark.parametrize("regime", list(GAINS))
def test_trajectories_near_origin_ungated_against_mean_field(regime):
    make = lambda g: NeuralODE(400, 0, init=regime, generator=g, dtype=D)
    r = growth_ratios(make, draws=3, n=400, T=30.0)
    check_trajectories(regime, r, None if regime == "chaotic" else linear_mean_field_ratio(GAINS[regime], 30.0))
