"""Export: spec() + flat_parameters() -> from_spec rebuilds every model bit for bit, and the spec means what
`gnode.models.spec`'s docstring says (checked by an independent NumPy evaluator written from that text)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from gnode.models import (
    DiscreteGRU,
    DiscreteLSTM,
    ElmanRNN,
    GatedNODE,
    MinimalGRU,
    NeuralODE,
    SequenceModel,
    from_spec,
)

D = torch.float64

VECTOR_FIELDS = {
    "gnode": lambda dt: GatedNODE(4, 2, dtype=dt),
    "gnode-deep-learn-tau": lambda dt: GatedNODE(
        4, 2, depth_F=3, depth_G=2, width_F=[6, 5], width_G=3, learn_tau=True, tau=0.4, phi_h="identity", dtype=dt
    ),
    "gnode-autonomous-rate": lambda dt: GatedNODE(4, 0, depth_F=2, pre_activation="tanh", tau=1.7, dtype=dt),
    "gnode-no-leak-tanh-hidden": lambda dt: GatedNODE(4, 1, depth_F=2, phi_a="tanh", leak=False, dtype=dt),
    "node": lambda dt: NeuralODE(4, 2, depth=2, width=8, dtype=dt),
    "node-chen": lambda dt: NeuralODE(4, 2, depth=2, leak=False, dtype=dt),
    "mgru": lambda dt: MinimalGRU(4, 2, tau=0.3, dtype=dt),
    "elman-rate": lambda dt: ElmanRNN(4, 2, phi="relu", dtype=dt),
    "elman-classical": lambda dt: ElmanRNN(4, 2, form="classical", learn_tau=True, dtype=dt),
}


def randomise(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    dt = model.flat_parameters().dtype
    model.load_flat(0.5 * torch.randn(model.num_flat(), generator=g, dtype=torch.float64).to(dt))
    return model


def through_json(spec: dict) -> dict:
    return json.loads(json.dumps(spec))


def data(model, dtype, b=3, seed=1):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(b, model.n, generator=g, dtype=torch.float64).to(dtype)
    x = torch.randn(b, model.d_in, generator=g, dtype=torch.float64).to(dtype) if model.d_in else None
    return torch.zeros(b, dtype=dtype), h, x


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("name", list(VECTOR_FIELDS))
def test_vector_field_round_trip_is_exact(name, dtype):
    m = randomise(VECTOR_FIELDS[name](dtype))
    spec, flat = through_json(m.spec()), m.flat_parameters().detach().clone()
    back = from_spec(spec, flat)
    assert type(back) is type(m)
    assert back.spec() == m.spec()
    assert torch.equal(back.flat_parameters(), flat) and back.flat_parameters().dtype == dtype
    t, h, x = data(m, dtype)
    assert torch.equal(back(t, h, x), m(t, h, x))
    assert torch.equal(back.jacobian(t, h, x), m.jacobian(t, h, x))
    assert [n for n, _ in back.named_parameters()] == [n for n, _ in m.named_parameters()]


@pytest.mark.parametrize("name", list(VECTOR_FIELDS))
def test_flat_vector_lists_every_parameter_once_in_named_order(name):
    m = VECTOR_FIELDS[name](D)
    m.check_flat_covers_parameters()
    assert m.num_flat() == sum(p.numel() for p in m.parameters()) == m.flat_parameters().numel()
    names = {n for n, _ in m.named_parameters()}
    assert {n for n, _ in m.flat_entries()} == names  # flat names are the module's own parameter names


def test_flat_layout_is_row_major_as_documented():
    m = GatedNODE(3, 2, depth_F=2, width_F=4, dtype=D)
    m.load_flat(torch.arange(m.num_flat(), dtype=D))
    W0 = m.F.layers[0].weight  # first block: (4, 3)
    assert W0[1, 2].item() == 1 * 3 + 2
    U0 = m.F.layers[0].input_weight  # next block (4, 2), after W0's 12 entries
    assert U0[3, 1].item() == 12 + 3 * 2 + 1
    assert m.F.layers[0].bias[0].item() == 12 + 8
    assert [e[0] for e in m.spec()["parameters"]] == [
        "F.layers.0.weight",
        "F.layers.0.input_weight",
        "F.layers.0.bias",
        "F.layers.1.weight",
        "F.layers.1.bias",
        "G.layers.0.weight",
        "G.layers.0.input_weight",
        "G.layers.0.bias",
    ]


# ---- the contract: an evaluator written from the docstring of gnode.models.spec ---------------------------


def evaluate_spec(spec: dict, flat: np.ndarray, h: np.ndarray, x: np.ndarray | None) -> np.ndarray:
    acts = {
        "identity": lambda a: a,
        "tanh": np.tanh,
        "relu": lambda a: np.maximum(a, 0),
        "sigmoid": lambda a: 1 / (1 + np.exp(-a)),
    }
    blocks, offset = {}, 0
    for name, shape in spec["parameters"]:
        size = int(np.prod(shape))
        blocks[name] = flat[offset : offset + size].reshape(shape)  # NumPy reshape is row-major (C order)
        offset += size
    assert offset == flat.size

    def network(name):
        net = spec[name]
        s = acts[net["pre_activation"]](h)
        for l, layer in enumerate(net["layers"]):
            a = s @ blocks[f"{name}.layers.{l}.weight"].T + blocks[f"{name}.layers.{l}.bias"]
            if layer["takes_input"] and spec["d_in"] > 0 and x is not None:
                a = a + x @ blocks[f"{name}.layers.{l}.input_weight"].T
            s = acts[layer["activation"]](a)
        return s

    r = network("F") - h if spec["leak"] else network("F")
    f = network("G") * r if spec["gate"] else r
    tau = np.exp(blocks["log_tau"]) if spec["learn_tau"] else spec["tau"]
    return f / tau


@pytest.mark.parametrize("name", list(VECTOR_FIELDS))
def test_spec_means_what_its_docstring_says(name):
    m = randomise(VECTOR_FIELDS[name](D), seed=4)
    spec = through_json(m.spec())
    t, h, x = data(m, D, b=5)
    want = evaluate_spec(spec, m.flat_parameters().detach().numpy(), h.numpy(), None if x is None else x.numpy())
    np.testing.assert_allclose(m(t, h, x).detach().numpy(), want, rtol=1e-13, atol=1e-14)


# ---- sequence models and baselines -------------------------------------------------------------------------


def test_sequence_model_spec_round_trip_is_exact():
    import gnode

    vf = GatedNODE(4, 2, depth_F=2, learn_tau=True, dtype=D)
    m = SequenceModel(vf, 3, alg=gnode.DP5(), reltol=1e-7, interpolation="linear", solve_kwargs={"maxiters": 500})
    randomise(m, seed=9)
    spec = through_json(m.spec())
    assert spec["vector_field"] == vf.spec() and spec["interpolation"] == "linear"
    assert spec["parameters"][-3:] == [["readout.weight", [3, 4]], ["readout.bias", [3]], ["h0", [4]]]
    back = from_spec(spec, m.flat_parameters().detach())
    assert type(back) is SequenceModel and type(back.vector_field) is GatedNODE
    assert back.spec() == m.spec() and repr(back.alg) == "DP5()"
    assert torch.equal(back.flat_parameters(), m.flat_parameters())
    assert back.solve_kwargs == {"maxiters": 500} and back.reltol == 1e-7


@pytest.mark.parametrize("cls", [DiscreteGRU, DiscreteLSTM])
@pytest.mark.parametrize("h0", ["zeros", "learnable"])
def test_baseline_round_trip_is_exact(cls, h0):
    m = randomise(cls(5, 2, 3, h0=h0, dtype=D), seed=2)
    back = from_spec(through_json(m.spec()), m.flat_parameters().detach())
    assert type(back) is cls and back.spec() == m.spec()
    x = torch.randn(4, 6, 2, dtype=D)
    times = torch.linspace(0, 1, 6, dtype=D)
    assert torch.equal(back(x, times).y, m(x, times).y)
    m.check_flat_covers_parameters()


def test_from_spec_leaves_the_global_random_state_alone():
    specs = [SequenceModel(GatedNODE(3, 1), 2).spec(), DiscreteLSTM(3, 1, 2).spec()]
    state = torch.random.get_rng_state()
    for spec in specs:
        from_spec(spec)
    assert torch.equal(torch.random.get_rng_state(), state)


def test_from_spec_without_flat_gives_zero_parameters():
    m = from_spec(GatedNODE(3, 1, depth_F=2).spec())
    assert torch.equal(m.flat_parameters(), torch.zeros(m.num_flat()))


# ---- errors ------------------------------------------------------------------------------------------------


def test_load_flat_rejects_wrong_sizes():
    m = GatedNODE(3, 1)
    with pytest.raises(ValueError, match=r"has \d+ parameters .* but flat has 5"):
        m.load_flat(torch.zeros(5))
    with pytest.raises(ValueError, match="must be 1-D"):
        m.load_flat(torch.zeros(1, m.num_flat()))
    with pytest.raises(TypeError, match="floating point"):
        m.load_flat(torch.zeros(m.num_flat(), dtype=torch.long))


def test_from_spec_rejects_inconsistent_specs():
    m = GatedNODE(3, 1, depth_F=2)
    spec = m.spec()
    with pytest.raises(ValueError, match="version"):
        from_spec({**spec, "version": 99})
    with pytest.raises(ValueError, match="unknown family"):
        from_spec({**spec, "family": "Transformer"})
    with pytest.raises(ValueError, match="'gate' is False but 'G' is given"):
        from_spec({**spec, "gate": False})
    bad_layers = json.loads(json.dumps(spec))
    bad_layers["F"]["layers"][1]["in"] = 7
    with pytest.raises(ValueError, match="consecutive sizes must chain"):
        from_spec(bad_layers)
    bad_layout = json.loads(json.dumps(spec))
    bad_layout["parameters"][0][1] = [3, 4]
    with pytest.raises(ValueError, match="does not match the architecture"):
        from_spec(bad_layout)
    bad_act = json.loads(json.dumps(spec))
    bad_act["F"]["layers"][0]["activation"] = "gelu"
    with pytest.raises(ValueError, match="layer activation must be one of"):
        from_spec(bad_act)
    with pytest.raises(TypeError, match="'format' key"):
        from_spec({"family": "GatedNODE"})
    with pytest.raises(TypeError, match="only to sequence models"):
        from_spec(spec, alg=None)


def test_from_spec_rebuilds_algorithms_with_options_and_asks_for_one_it_cannot_rebuild():
    import gnode

    alg, sens = gnode.AutoTsit5(gnode.KenCarp4(kappa=0.02)), gnode.BacksolveAdjoint(alg=gnode.Vern7(), reltol=1e-8)
    m = SequenceModel(GatedNODE(3, 1), 2, alg=alg, sensealg=sens)
    back = from_spec(through_json(m.spec()))
    assert back.alg == alg and back.sensealg == sens
    spec = m.spec()
    spec["solver"]["alg"] = "RadauIIA99()"  # a method this gnode does not have
    with pytest.raises(ValueError, match=r"pass alg=\.\.\. to from_spec"):
        from_spec(spec)
    assert from_spec(spec, alg=gnode.Rodas5P()).alg == gnode.Rodas5P()
