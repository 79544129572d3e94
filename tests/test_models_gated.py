"""The gnODE vector field and its reductions: formulas written out by hand, the structured Jacobian against
torch.func.jacrev, gradients to every parameter, and the errors for bad sizes."""

from __future__ import annotations

import pytest
import torch

from gnode.models import ElmanRNN, GatedNODE, MinimalGRU, NeuralODE

D = torch.float64


def randomise(model, seed: int = 0, scale: float = 0.7):
    """Every parameter (biases too) drawn at random, so that no test relies on the zero-bias initialisation."""
    g = torch.Generator().manual_seed(seed)
    model.load_flat(scale * torch.randn(model.num_flat(), generator=g, dtype=D))
    return model


def batch(n: int, d_in: int, b: int = 5, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(b, n, generator=g, dtype=D)
    x = torch.randn(b, d_in, generator=g, dtype=D) if d_in else None
    return torch.zeros(b, dtype=D), h, x


def copy_into(src, dst):
    assert src.flat_layout() == dst.flat_layout()
    dst.load_flat(src.flat_parameters().detach())
    return dst


# ---- the formulas, written out ----------------------------------------------------------------------


def test_gated_node_depth2_is_the_paper_formula():
    n, d, w = 4, 3, 6
    m = randomise(GatedNODE(n, d, depth_F=2, depth_G=2, width_F=w, width_G=5, tau=0.7, dtype=D))
    t, h, x = batch(n, d)
    F0, F1 = m.F.layers
    G0, G1 = m.G.layers
    F = torch.tanh(torch.relu(h @ F0.weight.T + x @ F0.input_weight.T + F0.bias) @ F1.weight.T + F1.bias)
    G = torch.sigmoid(torch.relu(h @ G0.weight.T + x @ G0.input_weight.T + G0.bias) @ G1.weight.T + G1.bias)
    assert F0.weight.shape == (w, n) and F1.weight.shape == (n, w) and G0.weight.shape == (5, n)
    assert F1.input_weight is None  # only the first layer reads x
    torch.testing.assert_close(m(t, h, x), G * (-h + F) / 0.7, rtol=0, atol=1e-14)
    torch.testing.assert_close(m.gates(t, h, x), G, rtol=0, atol=1e-15)
    torch.testing.assert_close(m.timescales(t, h, x), 0.7 / G, rtol=1e-15, atol=0)


def test_neural_ode_equals_ungated_general_model_and_formula():
    n, d = 5, 2
    for leak in (True, False):
        node = randomise(NeuralODE(n, d, depth=2, width=7, phi_h="identity", leak=leak, tau=2.0, dtype=D))
        general = copy_into(
            node, GatedNODE(n, d, depth_F=2, width_F=7, phi_h="identity", leak=leak, tau=2.0, gate=False, dtype=D)
        )
        t, h, x = batch(n, d)
        L0, L1 = node.F.layers
        F = torch.relu(h @ L0.weight.T + x @ L0.input_weight.T + L0.bias) @ L1.weight.T + L1.bias
        want = ((F - h) if leak else F) / 2.0
        assert torch.equal(node(t, h, x), general(t, h, x))
        torch.testing.assert_close(node(t, h, x), want, rtol=0, atol=1e-14)
        assert torch.equal(node.gates(t, h, x), torch.ones_like(h))
        assert node.G is None and not node.gated


def test_minimal_gru_equals_one_layer_general_model_and_formula():
    n, d = 6, 3
    mgru = randomise(MinimalGRU(n, d, tau=0.5, dtype=D))
    general = copy_into(mgru, GatedNODE(n, d, depth_F=1, depth_G=1, tau=0.5, dtype=D))
    t, h, x = batch(n, d)
    (Fl,), (Gl,) = mgru.F.layers, mgru.G.layers
    z = torch.sigmoid(h @ Gl.weight.T + x @ Gl.input_weight.T + Gl.bias)
    want = z * (-h + torch.tanh(h @ Fl.weight.T + x @ Fl.input_weight.T + Fl.bias)) / 0.5
    assert torch.equal(mgru(t, h, x), general(t, h, x))
    torch.testing.assert_close(mgru(t, h, x), want, rtol=0, atol=1e-14)


@pytest.mark.parametrize("phi", ["tanh", "relu", "identity"])
def test_elman_rate_form_equals_general_model_and_formula(phi):
    n, d = 5, 2
    rnn = randomise(ElmanRNN(n, d, phi=phi, tau=1.5, dtype=D))
    general = copy_into(
        rnn, GatedNODE(n, d, gate=False, depth_F=1, phi_h="identity", pre_activation=phi, tau=1.5, dtype=D)
    )
    t, h, x = batch(n, d)
    W, U, b = rnn.W, rnn.F.layers[0].input_weight, rnn.F.layers[0].bias
    act = {"tanh": torch.tanh, "relu": torch.relu, "identity": lambda a: a}[phi]
    assert rnn.form == "rate"
    assert torch.equal(rnn(t, h, x), general(t, h, x))
    torch.testing.assert_close(rnn(t, h, x), (-h + act(h) @ W.T + x @ U.T + b) / 1.5, rtol=0, atol=1e-14)


def test_elman_classical_form_is_the_papers_one_layer_node():
    n, d = 5, 2
    rnn = randomise(ElmanRNN(n, d, form="classical", dtype=D))
    node = copy_into(rnn, NeuralODE(n, d, depth=1, dtype=D))
    general = copy_into(rnn, GatedNODE(n, d, gate=False, depth_F=1, dtype=D))
    t, h, x = batch(n, d)
    W, U, b = rnn.W, rnn.F.layers[0].input_weight, rnn.F.layers[0].bias
    assert rnn.form == "classical"
    assert torch.equal(rnn(t, h, x), node(t, h, x)) and torch.equal(rnn(t, h, x), general(t, h, x))
    torch.testing.assert_close(rnn(t, h, x), -h + torch.tanh(h @ W.T + x @ U.T + b), rtol=0, atol=1e-14)


def test_elman_forms_are_related_by_the_change_of_variables():
    """For constant x: h_rate = W v + U x + b maps classical trajectories v(t) onto rate ones, because
    d/dt (W v + c) = W (-v + tanh(W v + c)) = -h_rate + W tanh(h_rate) + c."""
    n, d = 6, 2
    rate = randomise(ElmanRNN(n, d, form="rate", dtype=D), seed=3)
    classical = copy_into(rate, ElmanRNN(n, d, form="classical", dtype=D))
    t, v, x = batch(n, d)
    W, U, b = rate.W, rate.F.layers[0].input_weight, rate.F.layers[0].bias
    h_rate = v @ W.T + x @ U.T + b
    torch.testing.assert_close(rate(t, h_rate, x), classical(t, v, x) @ W.T, rtol=1e-12, atol=1e-12)


def test_without_input_x_none_means_zero_input():
    n, d = 4, 3
    m = randomise(GatedNODE(n, d, depth_F=2, dtype=D))
    t, h, _ = batch(n, d)
    assert torch.equal(m(t, h), m(t, h, torch.zeros(h.shape[0], d, dtype=D)))


def test_learnable_tau_is_a_parameter_stored_as_its_log():
    m = GatedNODE(3, 0, tau=0.25, learn_tau=True, dtype=D)
    assert isinstance(m.log_tau, torch.nn.Parameter) and m.log_tau.shape == ()
    torch.testing.assert_close(m.tau.detach(), torch.tensor(0.25, dtype=D))
    with torch.no_grad():
        m.log_tau.fill_(0.0)
    t, h, _ = batch(3, 0)
    fixed = GatedNODE(3, 0, tau=1.0, dtype=D)
    fixed.load_flat(m.flat_parameters().detach()[:-1])  # the same layout without log_tau at the end
    torch.testing.assert_close(m(t, h), fixed(t, h), rtol=0, atol=1e-15)
    assert m.flat_layout()[-1] == ["log_tau", []]


# ---- the structured Jacobian -------------------------------------------------------------------------

JACOBIAN_MODELS = {
    "gnode-L1": lambda: GatedNODE(5, 2, dtype=D),
    "gnode-L2-widths": lambda: GatedNODE(5, 2, depth_F=2, depth_G=2, width_F=9, width_G=3, tau=0.3, dtype=D),
    "gnode-L3-identity-out": lambda: GatedNODE(5, 2, depth_F=3, depth_G=2, width_F=[7, 4], phi_h="identity", dtype=D),
    "gnode-tanh-hidden-learn-tau": lambda: GatedNODE(5, 2, depth_F=2, phi_a="tanh", learn_tau=True, tau=2.0, dtype=D),
    "gnode-no-leak": lambda: GatedNODE(5, 2, depth_F=2, leak=False, dtype=D),
    "gnode-rate-form": lambda: GatedNODE(5, 2, depth_F=2, pre_activation="tanh", dtype=D),
    "gnode-autonomous": lambda: GatedNODE(5, 0, depth_F=2, depth_G=2, dtype=D),
    "node": lambda: NeuralODE(5, 2, depth=3, dtype=D),
    "node-chen": lambda: NeuralODE(5, 2, depth=2, leak=False, dtype=D),
    "mgru": lambda: MinimalGRU(5, 2, phi_h="identity", dtype=D),
    "elman-rate": lambda: ElmanRNN(5, 2, dtype=D),
    "elman-rate-relu": lambda: ElmanRNN(5, 2, phi="relu", dtype=D),
    "elman-classical": lambda: ElmanRNN(5, 2, form="classical", dtype=D),
}


@pytest.mark.parametrize("name", list(JACOBIAN_MODELS))
def test_structured_jacobian_equals_jacrev(name):
    m = randomise(JACOBIAN_MODELS[name](), seed=7)
    t, h, x = batch(m.n, m.d_in, b=6, seed=11)
    J = m.jacobian(t, h, x)
    assert J.shape == (6, m.n, m.n)

    def row(hh, xx):
        return m(t[:1], hh[None], None if xx is None else xx[None])[0]

    if x is None:
        ref = torch.func.vmap(torch.func.jacrev(lambda hh: row(hh, None)))(h)
    else:
        ref = torch.func.vmap(torch.func.jacrev(row, argnums=0))(h, x)
    assert (J - ref).abs().max() < 1e-10


def test_structured_jacobian_matches_central_differences():
    """An autodiff-free reference: central differences in float64."""
    m = randomise(GatedNODE(4, 1, depth_F=2, depth_G=2, phi_a="tanh", dtype=D), seed=2)
    t, h, x = batch(4, 1, b=1)
    eps = 1e-6
    cols = []
    with torch.no_grad():
        for j in range(4):
            e = torch.zeros_like(h)
            e[0, j] = eps
            cols.append((m(t, h + e, x) - m(t, h - e, x))[0] / (2 * eps))
        fd = torch.stack(cols, dim=1)
        assert (m.jacobian(t, h, x)[0] - fd).abs().max() < 1e-8


# ---- gradients ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["gnode-L3-identity-out", "gnode-tanh-hidden-learn-tau", "node", "mgru", "elman-rate"])
def test_gradients_reach_every_parameter(name):
    m = randomise(JACOBIAN_MODELS[name](), seed=5)
    t, h, x = batch(m.n, m.d_in)
    (m(t, h, x) ** 2).sum().backward()
    for pname, p in m.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().sum() > 0, f"{pname} gets a zero gradient"


def test_gradcheck_with_respect_to_state_input_and_parameters():
    m = randomise(GatedNODE(3, 2, depth_F=2, depth_G=2, width_F=4, phi_a="tanh", learn_tau=True, dtype=D))
    t, h, x = batch(3, 2, b=2)
    params = dict(m.named_parameters())
    names = list(params)

    def f(h, x, *ps):
        return torch.func.functional_call(m, dict(zip(names, ps)), (t, h, x))

    inputs = (h.requires_grad_(), x.requires_grad_(), *[p.detach().clone().requires_grad_() for p in params.values()])
    assert torch.autograd.gradcheck(f, inputs)


# ---- errors ------------------------------------------------------------------------------------------


def test_forward_rejects_inconsistent_sizes():
    m = GatedNODE(4, 2)
    t = torch.zeros(3)
    with pytest.raises(ValueError, match=r"h has 5 features .* n=4"):
        m(t, torch.zeros(3, 5), torch.zeros(3, 2))
    with pytest.raises(ValueError, match=r"x has 3 features .* d_in=2"):
        m(t, torch.zeros(3, 4), torch.zeros(3, 3))
    with pytest.raises(ValueError, match=r"d_in=0 .* build it with d_in=2"):
        GatedNODE(4, 0)(t, torch.zeros(3, 4), torch.zeros(3, 2))
    with pytest.raises(ValueError, match=r"x has 3 features"):
        m.jacobian(t, torch.zeros(3, 4), torch.zeros(3, 3))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n": 0}, "n must be an integer >= 1"),
        ({"d_in": -1}, "d_in must be an integer >= 0"),
        ({"phi_h": "relu"}, "phi_h must be one of"),
        ({"phi_a": "sigmoid"}, "phi_a must be one of"),
        ({"depth_F": 0}, "depth of F must be an integer >= 1"),
        ({"depth_F": 3, "width_F": [4]}, "a depth-3 network has 2 hidden layer"),
        ({"depth_G": 2, "width_G": 0}, "width of G must be positive"),
        ({"tau": 0.0}, "tau must be a positive finite number"),
        ({"init": "edge"}, "init must be one of"),
        ({"init": "stable", "gain": 1.5}, "needs gain < 1"),
        ({"init": "critical", "gain": 0.9}, "needs gain = 1"),
        ({"init": "chaotic", "gain": 0.5}, "needs gain > 1"),
    ],
)
def test_constructor_rejects_bad_settings(kwargs, match):
    args = {"n": 4, "d_in": 1, **kwargs}
    with pytest.raises(ValueError, match=match):
        GatedNODE(args.pop("n"), args.pop("d_in"), **args)


def test_reduction_constructors_reject_bad_settings():
    with pytest.raises(ValueError, match="form must be one of"):
        ElmanRNN(4, form="gated")
    with pytest.raises(ValueError, match="phi must be one of"):
        ElmanRNN(4, form="classical", phi="relu")


def test_as_ode_problem_vector_field():
    import gnode

    m = GatedNODE(3, 2, dtype=D)
    prob = gnode.ODEProblem(
        m,
        torch.zeros(2, 3, dtype=D),
        (0.0, 1.0),
        inputs=gnode.Control(torch.tensor([0.0, 1.0], dtype=D), torch.ones(2, 2, 2, dtype=D)),
    )
    assert {id(p) for p in prob.params} == {id(p) for p in m.parameters()}
    t, h, x = batch(3, 2, b=2)
    assert torch.equal(prob.rhs(t, h, x), m(t, h, x))
