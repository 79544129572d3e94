"""Stiffness telemetry: on linear systems the spectral radius, stiffness ratio and dt*rho/bound are known
exactly; a stiff system at loose tolerance shows an explicit method held at its stability bound; gate
timescales match a hand computation, including the input the solver saw at each step."""

from __future__ import annotations

import math

import pytest
import torch

import gnode
from gnode.analysis import (
    pointwise_telemetry,
    stability_bound,
    stiffness_telemetry,
    telemetry_summary,
)
from gnode.models import GatedNODE, MinimalGRU, SequenceModel

D = torch.float64


def linear(A):
    return lambda t, h: h @ A.T


def rotated(eigs_real, pairs, seed=0):
    blocks = [torch.tensor([[float(l)]], dtype=D) for l in eigs_real]
    blocks += [torch.tensor([[a, b], [-b, a]], dtype=D) for a, b in pairs]
    B = torch.block_diag(*blocks)
    g = torch.Generator().manual_seed(seed)
    P = torch.eye(B.shape[0], dtype=D) + 0.3 * torch.randn(B.shape, generator=g, dtype=D)
    return P @ B @ torch.linalg.inv(P)


def test_linear_system_telemetry_is_its_spectrum_at_every_step():
    # eigenvalues -20, -1 +- 2i: rho = 20, max Re = -1, stiffness ratio 20/1 = 20 everywhere
    A = rotated([-20.0], [(-1.0, 2.0)])
    u0 = torch.randn(3, 3, generator=torch.Generator().manual_seed(1), dtype=D)
    sol = gnode.solve(gnode.ODEProblem(linear(A), u0, (0.0, 4.0)), gnode.Tsit5(), reltol=1e-6, abstol=1e-9)
    tel = stiffness_telemetry(linear(A), sol)
    v = tel.valid
    assert tel.from_steps and tel.method == "exact" and tel.alg == "Tsit5"
    assert v.sum(-1).tolist() == sol.stats.naccept.tolist()  # one entry per accepted step
    torch.testing.assert_close(tel.rho[v], torch.full_like(tel.rho[v], 20.0), rtol=1e-10, atol=0)
    torch.testing.assert_close(tel.max_real[v], torch.full_like(tel.rho[v], -1.0), rtol=0, atol=1e-10)
    torch.testing.assert_close(tel.stiffness_ratio[v], torch.full_like(tel.rho[v], 20.0), rtol=1e-10, atol=0)
    bound = stability_bound(gnode.Tsit5())
    torch.testing.assert_close(tel.ratio[v], tel.dt[v].abs() * 20.0 / bound, rtol=1e-12, atol=0)
    # the steps are the solver's: they tile [0, 4] for every trajectory
    for b in range(3):
        t, dt = tel.t[b][v[b]], tel.dt[b][v[b]]
        assert float(t[0]) == 0.0 and float(t[-1] + dt[-1]) == pytest.approx(4.0, abs=1e-12)
        torch.testing.assert_close(t[1:], (t + dt)[:-1], rtol=0, atol=1e-12)
    # the amplification |R(dt lambda)| of each step, from the exact eigenvalues
    lam = torch.linalg.eigvals(A)
    z = tel.dt[v].abs()[:, None] * lam[None, :]
    coeffs = gnode.analysis.stability_polynomial(gnode.Tsit5().tableau)
    want = sum(float(c) * z**k for k, c in enumerate(coeffs)).abs().amax(-1)
    torch.testing.assert_close(tel.amplification[v], want, rtol=1e-10, atol=0)
    # JVP power iterates (Krylov) agree without forming J
    kry = stiffness_telemetry(linear(A), sol, method="krylov", krylov_iters=3)
    assert kry.method == "krylov" and kry.stiffness_ratio is None
    torch.testing.assert_close(kry.rho[v], tel.rho[v], rtol=1e-9, atol=0)


def test_stiff_system_holds_an_explicit_method_at_its_bound_and_not_an_l_stable_one():
    # y' = -500 (y - cos t): after the transient, Tsit5's steps are limited by stability (dt * 500 ~ bound),
    # while accuracy alone would allow far longer ones; KenCarp4 is L-stable (bound inf: ratio 0)
    f = lambda t, y: -500.0 * (y - torch.cos(t)[:, None])
    prob = gnode.ODEProblem(f, torch.zeros(2, 1, dtype=D), (0.0, 2.0))
    sol = gnode.solve(prob, gnode.Tsit5(), reltol=1e-3, abstol=1e-6)
    tel = stiffness_telemetry(f, sol)
    late = tel.valid & (tel.t > 0.2)
    torch.testing.assert_close(tel.rho[tel.valid], torch.full_like(tel.rho[tel.valid], 500.0))
    med = float(tel.ratio[late].median())
    assert 0.6 < med < 1.2, med
    assert tel.summary()["stability_limited_fraction"] > 0.3
    stiff = stiffness_telemetry(f, gnode.solve(prob, gnode.KenCarp4(), reltol=1e-3, abstol=1e-6))
    assert stiff.bound == math.inf and float(stiff.ratio[stiff.valid].abs().max()) == 0.0
    assert float(stiff.dt_rho[stiff.valid & (stiff.t > 0.2)].median()) > 10 * stability_bound(gnode.Tsit5())


def mgru_by_hand():
    """A 2-unit mGRU with tau = 0.5 whose gate reads only the input: G = sigmoid(U_z x + b_z), so the
    timescales tau / G at a step depend on x alone."""
    m = MinimalGRU(2, 1, tau=0.5, dtype=D)
    with torch.no_grad():
        m.G.layers[0].weight.zero_()
        m.G.layers[0].input_weight.copy_(torch.tensor([[2.0], [-1.0]], dtype=D))
        m.G.layers[0].bias.copy_(torch.tensor([0.5, -0.3], dtype=D))
        m.F.layers[0].weight.copy_(torch.tensor([[0.5, -0.2], [0.3, 0.8]], dtype=D))
    return m


def hand_timescales(xv: float):
    sig = lambda a: 1.0 / (1.0 + math.exp(-a))
    taus = [0.5 / sig(2.0 * xv + 0.5), 0.5 / sig(-1.0 * xv - 0.3)]
    return min(taus), max(taus), max(taus) / min(taus)


def test_gate_timescales_match_a_hand_computation():
    m = mgru_by_hand()
    x = torch.tensor([[0.0], [1.5], [-2.0]], dtype=D)
    h = torch.tensor([[0.1, -0.3], [0.7, 0.2], [-1.0, 0.4]], dtype=D)
    pts = pointwise_telemetry(m, torch.zeros(3, dtype=D), h, x)
    for i, xv in enumerate([0.0, 1.5, -2.0]):
        lo, hi, spread = hand_timescales(xv)
        assert float(pts["tau_min"][i]) == pytest.approx(lo, rel=1e-14)
        assert float(pts["tau_max"][i]) == pytest.approx(hi, rel=1e-14)
        assert float(pts["tau_spread"][i]) == pytest.approx(spread, rel=1e-14)


def test_telemetry_along_a_driven_solve_sees_the_input_of_each_step():
    # zero-order-hold input x_k on [t_k, t_{k+1}): every step's timescales must be those of its own x_k
    m = mgru_by_hand()
    times = torch.arange(6, dtype=D)
    xs = torch.tensor([[0.0, 1.5, -2.0, 0.7, -0.4, 3.0], [1.0, -1.0, 0.0, 2.0, -3.0, 0.5]], dtype=D)[..., None]
    model = SequenceModel(m, 1, alg=gnode.RK4(), solve_kwargs={"dt": 0.25})
    with torch.no_grad():
        out = model(xs, times)
    tel = stiffness_telemetry(model, out.sol)
    assert tel.alg == "RK4" and bool(tel.valid.any())
    for b in range(2):
        for m_ in tel.valid[b].nonzero()[:, 0].tolist():
            k = int(torch.searchsorted(times, tel.t[b, m_], right=True)) - 1
            lo, hi, _ = hand_timescales(float(xs[b, k, 0]))
            assert float(tel.tau_min[b, m_]) == pytest.approx(lo, rel=1e-12)
            assert float(tel.tau_max[b, m_]) == pytest.approx(hi, rel=1e-12)
    assert tel.valid.sum().item() == 2 * 20  # RK4 with dt = 0.25 on [0, 5]
    per = tel.per_trajectory()
    assert per["steps"].tolist() == [20, 20] and per["tau_min"].shape == (2,)


def test_training_log_summary_of_a_gnode_batch():
    g = torch.Generator().manual_seed(0)
    vf = GatedNODE(4, 2, depth_F=2, depth_G=2, width_F=8, width_G=8, init="chaotic", gain=1.5, generator=g, dtype=D)
    model = SequenceModel(vf, 2, alg=gnode.RK4(), solve_kwargs={"dt": 0.1})
    x = torch.randn(6, 11, 2, generator=g, dtype=D)
    times = torch.linspace(0, 2, 11, dtype=D)
    with torch.no_grad():
        out = model(x, times)
    s = telemetry_summary(model, out.sol, max_points=40)
    assert set(s) == {
        "stiff_rho_max",
        "stiff_ratio_max",
        "stiff_stability_limited_fraction",
        "stiff_tau_min",
        "stiff_tau_max",
        "stiff_tau_spread_max",
        "stiff_stiffness_ratio_median",
    }
    assert all(isinstance(v, float) and math.isfinite(v) for v in s.values())
    assert telemetry_summary(model, None) == {}  # a discrete model has no solution
    full = stiffness_telemetry(model, out.sol)
    assert s["stiff_rho_max"] <= full.summary()["rho_max"] + 1e-12
    assert s["stiff_tau_min"] >= 1.0  # tau = 1 and G <= 1
    # rho at a step is the exact spectral radius of the model's autograd Jacobian at that step's state and input
    m_ = 7
    t = full.t[:, m_]
    assert bool(full.valid[:, m_].all())
    h = out.sol.interp.at(t)
    k = torch.searchsorted(times, t.contiguous(), right=True) - 1
    xk = x[torch.arange(6), k]
    for b in range(6):
        xb = xk[b : b + 1]
        J = torch.autograd.functional.jacobian(lambda hh, xb=xb: vf(torch.zeros(1, dtype=D), hh[None], xb)[0], h[b])
        assert float(full.rho[b, m_]) == pytest.approx(float(torch.linalg.eigvals(J).abs().max()), rel=1e-10)


def test_a_solution_without_step_history_gives_telemetry_at_the_saved_times():
    # the scipy engine keeps no steps: spectra and timescales at saveat, dt unknown (NaN), inputs must be given
    m = mgru_by_hand()
    times = torch.arange(4, dtype=D)
    control = gnode.Control(times, torch.tensor([[[0.0], [1.5], [-2.0], [0.7]]], dtype=D))
    prob = gnode.ODEProblem(m, torch.tensor([[0.2, -0.1]], dtype=D), (0.0, 3.0), inputs=control)
    with torch.no_grad():  # the scipy engine refuses a solve whose weights require grad (issue 15, item 3)
        sol = gnode.solve(prob, gnode.DP5(), engine="scipy", saveat=torch.tensor([0.5, 1.5, 2.5], dtype=D))
    with pytest.raises(ValueError, match="pass inputs= the problem's gnode.Control"):
        stiffness_telemetry(m, sol)
    tel = stiffness_telemetry(m, sol, inputs=control)
    assert not tel.from_steps and tel.valid.all() and torch.isnan(tel.dt).all()
    for j, xv in enumerate([0.0, 1.5, -2.0]):  # x on [k, k+1) is x_k
        assert float(tel.tau_min[0, j]) == pytest.approx(hand_timescales(xv)[0], rel=1e-12)
    s = tel.summary()
    assert math.isnan(s["ratio_max"]) and math.isnan(s["stability_limited_fraction"])
    h = sol.u[0]
    J = m.jacobian(sol.t, h, control.evaluate(sol.t, None, torch.zeros(3, dtype=torch.long)))
    torch.testing.assert_close(tel.rho[0], torch.linalg.eigvals(J).abs().amax(-1), rtol=1e-12, atol=0)


def test_bad_arguments_are_named():
    A = rotated([-1.0], [])
    sol = gnode.solve(gnode.ODEProblem(linear(A), torch.ones(1, 1, dtype=D), (0.0, 1.0)), gnode.Tsit5())
    with pytest.raises(ValueError, match="method must be one of"):
        stiffness_telemetry(linear(A), sol, method="power")
    with pytest.raises(ValueError, match="max_points must be a positive integer"):
        stiffness_telemetry(linear(A), sol, max_points=0)
    with pytest.raises(ValueError, match="stability bound must be a positive number"):
        stiffness_telemetry(linear(A), sol, stability_bound_override=-1.0)
