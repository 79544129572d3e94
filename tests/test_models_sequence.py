"""The sequence wrapper (solve + readout) against SciPy, its gradients, the discrete GRU/LSTM baselines against
their equations written out, and the errors for inconsistent sizes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp

import gnode
from gnode.models import DiscreteGRU, DiscreteLSTM, GatedNODE, SequenceModel, check_targets

D = torch.float64


def make(d_in=2, n=4, d_out=3, seed=0, **kwargs):
    g = torch.Generator().manual_seed(seed)
    vf = GatedNODE(n, d_in, depth_F=2, tau=0.8, init="chaotic", gain=1.5, generator=g, dtype=D)
    with torch.no_grad():  # nonzero biases and a nonzero start, so nothing is trivially zero
        for la in list(vf.F.layers) + list(vf.G.layers):
            la.bias.copy_(0.3 * torch.randn(la.bias.shape, generator=g, dtype=D))
    m = SequenceModel(vf, d_out, **kwargs)
    if m.h0 is not None:
        with torch.no_grad():
            m.h0.copy_(0.5 * torch.randn(n, generator=g, dtype=D))
    return m


def sequence(b=3, T=6, d_in=2, seed=1):
    g = torch.Generator().manual_seed(seed)
    times = torch.cumsum(0.2 + torch.rand(T, generator=g, dtype=D), 0) - 0.2
    return torch.randn(b, T, d_in, generator=g, dtype=D), times


def numpy_field(vf):
    """The model's vector field in NumPy (depth-2 F, depth-1 G, as `make` builds it), for SciPy."""
    (F0, F1), (G0,) = [
        [
            {k: None if v is None else v.detach().numpy() for k, v in la.named_parameters()}
            | {"U": None if la.input_weight is None else la.input_weight.detach().numpy()}
            for la in net.layers
        ]
        for net in (vf.F, vf.G)
    ]
    tau = float(vf.tau)

    def f(h, x):
        F = np.tanh(np.maximum(F0["weight"] @ h + F0["U"] @ x + F0["bias"], 0) @ F1["weight"].T + F1["bias"])
        G = 1 / (1 + np.exp(-(G0["weight"] @ h + G0["U"] @ x + G0["bias"])))
        return G * (F - h) / tau

    return f


def scipy_reference(vf, x, times, h0, interpolation):
    """SciPy DOP853 at rtol 1e-12, one trajectory and one input interval at a time (x is smooth inside)."""
    f = numpy_field(vf)
    ts = times.numpy()
    out = np.zeros((x.shape[0], len(ts), vf.n))
    for b in range(x.shape[0]):
        xb = x[b].numpy()
        h = out[b, 0] = h0[b].detach().numpy()
        for k in range(len(ts) - 1):

            def rhs(t, h, k=k, xb=xb):
                s = (t - ts[k]) / (ts[k + 1] - ts[k]) if interpolation == "linear" else 0.0
                return f(h, xb[k] + s * (xb[k + 1] - xb[k]))

            h = out[b, k + 1] = solve_ivp(rhs, (ts[k], ts[k + 1]), h, method="DOP853", rtol=1e-12, atol=1e-12).y[:, -1]
    return torch.as_tensor(out)


@pytest.mark.parametrize("interpolation", ["zoh", "linear"])
def test_latent_trajectory_matches_scipy_and_readout_is_linear(interpolation):
    m = make(interpolation=interpolation, reltol=1e-10, abstol=1e-12)
    x, times = sequence(b=2, T=5)
    out = m(x, times)
    assert out.y.shape == (2, 5, 3) and out.h.shape == (2, 5, 4)
    ref = scipy_reference(m.vector_field, x, times, m.h0.expand(2, -1), interpolation)
    assert (out.h - ref).abs().max() < 1e-8
    assert torch.equal(out.h[:, 0], m.h0.expand(2, -1))
    torch.testing.assert_close(out.y, out.h @ m.readout.weight.T + m.readout.bias, rtol=0, atol=1e-14)
    assert out.sol.successful and out.sol.stats.nf.shape == (2,)


def test_dense_output_gives_the_latent_trajectory_between_samples():
    m = make()
    x, times = sequence()
    out = m(x, times)
    torch.testing.assert_close(out.sol(times), out.h, rtol=1e-12, atol=1e-12)
    mid = (times[:-1] + times[1:]) / 2
    assert out.sol(mid).shape == (3, 5, 4)


def test_given_initial_state_overrides_the_learnable_one():
    m = make()
    x, times = sequence()
    h0 = torch.randn(3, 4, dtype=D)
    assert torch.equal(m(x, times, h0=h0).h[:, 0], h0)
    shared = torch.randn(4, dtype=D)
    assert torch.equal(m(x, times, h0=shared).h[:, 0], shared.expand(3, 4))
    zeros = make(h0="zeros")
    assert zeros.h0 is None and torch.equal(zeros(x, times).h[:, 0], torch.zeros(3, 4, dtype=D))


def test_autonomous_model_needs_no_input():
    vf = GatedNODE(3, 0, dtype=D)
    m = SequenceModel(vf, 2, h0="zeros")
    times = torch.linspace(0, 2, 5, dtype=D)
    h0 = torch.randn(4, 3, dtype=D)
    out = m(None, times, h0=h0)
    assert out.y.shape == (4, 5, 2)
    prob = gnode.ODEProblem(vf, h0, (0.0, 2.0))
    torch.testing.assert_close(out.h, gnode.solve(prob, saveat=times).u, rtol=0, atol=0)


@pytest.mark.parametrize("sensealg", [None, gnode.InterpolatingAdjoint()])
def test_gradients_reach_every_parameter_through_the_solve(sensealg):
    m = make(sensealg=sensealg)
    x, times = sequence()
    target = torch.randn(3, 6, 3, dtype=D)
    out = m(x, times)
    check_targets(out.y, target)
    ((out.y - target) ** 2).mean().backward()
    for name, p in m.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


def test_gradient_matches_central_differences():
    """With a fixed-step method the solve is a fixed differentiable map, so backprop through it must equal
    central differences to O(eps^2) (an adaptive solve would add its step selection to the differences)."""
    m = make(alg=gnode.RK4(), solve_kwargs={"dt": 0.05})
    x, times = sequence(b=2, T=4)
    target = torch.randn(2, 4, 3, dtype=D)

    def loss():
        return ((m(x, times).y - target) ** 2).sum()

    loss().backward()
    eps = 1e-6
    for p, idx in [
        (m.vector_field.F.layers[0].weight, (2, 3)),
        (m.vector_field.G.layers[0].input_weight, (1, 0)),
        (m.h0, (1,)),
        (m.readout.bias, (0,)),
    ]:
        with torch.no_grad():
            p[idx] += eps
            up = loss()
            p[idx] -= 2 * eps
            down = loss()
            p[idx] += eps
        fd = ((up - down) / (2 * eps)).item()
        assert abs(p.grad[idx].item() - fd) < 1e-7 * max(1.0, abs(fd)), (idx, p.grad[idx].item(), fd)


def test_fixed_step_method_through_solve_kwargs():
    m = make(alg=gnode.RK4(), solve_kwargs={"dt": 0.025})
    x, times = sequence()
    ref = make(reltol=1e-10, abstol=1e-12)
    out = m(x, times)
    assert isinstance(out.sol.alg, gnode.RK4) and out.sol.stats.nreject.sum() == 0
    assert (out.h - ref(x, times).h).abs().max() < 1e-5  # measured 2e-6 (ReLU kinks cost RK4 some order)


# ---- baselines ---------------------------------------------------------------------------------------------


def gru_by_hand(rnn, x, h):
    Wi, Wh, bi, bh = rnn.weight_ih_l0, rnn.weight_hh_l0, rnn.bias_ih_l0, rnn.bias_hh_l0
    n = h.shape[1]
    gi, gh = x @ Wi.T + bi, h @ Wh.T + bh
    r = torch.sigmoid(gi[:, :n] + gh[:, :n])
    z = torch.sigmoid(gi[:, n : 2 * n] + gh[:, n : 2 * n])
    c = torch.tanh(gi[:, 2 * n :] + r * gh[:, 2 * n :])
    return (1 - z) * c + z * h


def lstm_by_hand(rnn, x, h, c):
    g = x @ rnn.weight_ih_l0.T + rnn.bias_ih_l0 + h @ rnn.weight_hh_l0.T + rnn.bias_hh_l0
    i, f, gg, o = g.chunk(4, dim=1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(gg)
    return torch.sigmoid(o) * torch.tanh(c), c


@pytest.mark.parametrize("cls", [DiscreteGRU, DiscreteLSTM])
def test_baselines_follow_their_equations_with_the_ode_alignment(cls):
    m = cls(4, 2, 3, h0="learnable", dtype=D)
    with torch.no_grad():
        m.h0.normal_()
        if cls is DiscreteLSTM:
            m.c0.normal_()
    x, times = sequence(T=5)
    out = m(x, times)
    assert out.sol is None and out.y.shape == (3, 5, 3) and out.h.shape == (3, 5, 4)
    h = m.h0.expand(3, 4)
    c = m.c0.expand(3, 4) if cls is DiscreteLSTM else None
    hs = [h]
    for k in range(4):  # h_k has seen x_0 .. x_{k-1}; x_{T-1} is not used
        if cls is DiscreteGRU:
            h = gru_by_hand(m.rnn, x[:, k], h)
        else:
            h, c = lstm_by_hand(m.rnn, x[:, k], h, c)
        hs.append(h)
    torch.testing.assert_close(out.h, torch.stack(hs, 1), rtol=0, atol=1e-14)
    torch.testing.assert_close(out.y, out.h @ m.readout.weight.T + m.readout.bias, rtol=0, atol=1e-14)
    out.y.sum().backward()
    for name, p in m.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


# ---- errors ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["ode", "gru"])
def test_inconsistent_inputs_are_named(model):
    m = make() if model == "ode" else DiscreteGRU(4, 2, 3, dtype=D)
    x, times = sequence()
    with pytest.raises(ValueError, match=r"x has 5 input features .* d_in=2; rebuild it with d_in=5"):
        m(torch.zeros(3, 6, 5, dtype=D), times)
    with pytest.raises(ValueError, match=r"x must be \(batch, time, d_in\).*use x\[None\]"):
        m(x[0], times)
    with pytest.raises(ValueError, match="5 times but x has 6 time steps"):
        m(x, times[:5])
    with pytest.raises(ValueError, match=r"strictly increasing, but times\[0\]"):
        m(x, times.flip(0))
    with pytest.raises(ValueError, match="at least 2 sample times"):
        m(x[:, :1], times[:1])
    with pytest.raises(TypeError, match="x has dtype torch.float32"):
        m(x.float(), times)
    with pytest.raises(ValueError, match=r"h0 must be \(3, 4\)"):
        m(x, times, h0=torch.zeros(2, 4, dtype=D))
    if model == "ode":
        with pytest.raises(ValueError, match=r"x \(batch, time, 2\) is required"):
            m(None, times)


def test_check_targets_names_the_mismatch():
    y = torch.zeros(3, 6, 2, dtype=D)
    check_targets(y, torch.ones(3, 6, 2, dtype=D))
    with pytest.raises(ValueError, match=r"d_out 3 vs 2.*build the readout with d_out=3"):
        check_targets(y, torch.zeros(3, 6, 3, dtype=D))
    with pytest.raises(ValueError, match=r"time 5 vs 6"):
        check_targets(y, torch.zeros(3, 5, 2, dtype=D))
    with pytest.raises(ValueError, match=r"targets\[\.\.\., None\]"):
        check_targets(torch.zeros(3, 6, 1, dtype=D), torch.zeros(3, 6, dtype=D))
    with pytest.raises(TypeError, match="cast them"):
        check_targets(y, torch.zeros(3, 6, 2))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"d_out": 0}, "d_out must be an integer >= 1"),
        ({"interpolation": "spline"}, "interpolation must be one of"),
        ({"h0": "random"}, "h0 must be one of"),
        ({"solve_kwargs": {"reltol": 1e-3}}, "pass reltol as SequenceModel's own argument"),
        ({"solve_kwargs": {"rtol": 1e-3}}, "unknown key 'rtol'"),
    ],
)
def test_sequence_model_rejects_bad_settings(kwargs, match):
    args = {"d_out": 2, **kwargs}
    with pytest.raises(ValueError, match=match):
        SequenceModel(GatedNODE(3, 1), args.pop("d_out"), **args)


def test_sequence_model_needs_a_vector_field_module():
    with pytest.raises(TypeError, match="nn.Module with attributes n and d_in"):
        SequenceModel(lambda t, h: -h, 2)
