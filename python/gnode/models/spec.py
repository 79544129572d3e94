r"""The architecture spec: how a gnODE-family model describes itself to another engine, and how it is rebuilt.

`model.spec()` returns plain data (dicts, lists, str, int, float, bool, None; `json.dumps` works) and
`model.flat_parameters()` one 1-D tensor. `from_spec(spec, flat)` rebuilds the same module, bit for bit.
This docstring is the contract the Julia engine implements; version 1.

Vector field spec  ("format": "gnode.vector_field")
---------------------------------------------------
    {
      "format":     "gnode.vector_field",
      "version":    1,
      "family":     "GatedNODE" | "NeuralODE" | "MinimalGRU" | "ElmanRNN",   (Python class; the maths is
                                                                              fully given by the fields below)
      "n":          N, the latent dimension,
      "d_in":       D, the input dimension (0: no input),
      "dtype":      "float64" | "float32" | ...   (of the parameters),
      "tau":        time constant (float; when learn_tau it is exp(log_tau) rounded to the dtype, informational:
                    the flat vector's "log_tau" is authoritative),
      "learn_tau":  bool,
      "leak":       bool,
      "gate":       bool,
      "F":          network,
      "G":          network, or null when "gate" is false,
      "parameters": [[name, shape], ...]   the layout of the flat vector, in order
    }

    network = {"pre_activation": act, "layers": [layer, ...]}
    layer   = {"in": int, "out": int, "activation": act, "takes_input": bool}
    act     = "identity" | "tanh" | "relu" | "sigmoid"
              identity(a) = a; tanh; relu(a) = max(a, 0); sigmoid(a) = 1 / (1 + exp(-a))

A network maps (h, x) to s_L:

    s_0 = pre_activation(h)                                   elementwise
    a_l = W_l s_l + U_l x + b_l                               U_l x only when layers[l].takes_input (and D > 0)
    s_{l+1} = activation_l(a_l)                               l = 0 .. L-1

with W_l of shape (out_l, in_l), U_l (out_l, D), b_l (out_l,). in_0 = N, out_{L-1} = N, out_l = in_{l+1}.
The vector field (the right-hand side of dh/dt = f(t, h, x)) is

    r = F(h, x) - h      if "leak" else   F(h, x)
    f = G(h, x) .* r     if "gate" else   r
    dh/dt = f / tau      where tau = exp(log_tau) if "learn_tau" else the spec's "tau"

The family members are settings of this one model:
    GatedNODE   gate, leak; F layers: phi_a (hidden) then phi_h in {identity, tanh}; G: phi_a then sigmoid
    NeuralODE   gate = false (leak = false: Chen et al.'s dh/dt = F(h, x) / tau)
    MinimalGRU  gate, one layer each:  dh/dt = sigmoid(W_z h + U_z x + b_z) .* (-h + phi_h(W_h h + U_h x + b_h)) / tau
    ElmanRNN    gate = false, one layer, and either the rate form  pre_activation = phi, activation = identity:
                    tau dh/dt = -h + W phi(h) + U x + b
                or the classical form  pre_activation = identity, activation = phi:
                    tau dh/dt = -h + phi(W h + U x + b)

Flat parameter vector
---------------------
One 1-D array of the spec's dtype: the tensors listed in "parameters", in that order, each flattened
row-major (C order: a weight W of shape (out, in) stores W[i, j] at offset i * in + j; in Julia,
`W = permutedims(reshape(v[k+1:k+out*in], in, out))`). A shape [] is a scalar (one element). Names:

    "F.layers.{l}.weight"        W_l of F         (out_l, in_l)
    "F.layers.{l}.input_weight"  U_l of F         (out_l, D)      only if layers[l].takes_input and D > 0
    "F.layers.{l}.bias"          b_l of F         (out_l,)
    ... the same for every layer l = 0, 1, ... of F, then for every layer of G ("G.layers.{l}...") if gated,
    "log_tau"                    log(tau)         []              only if learn_tau

Gradients come back in the same layout.

Sequence model spec  ("format": "gnode.sequence_model")
-------------------------------------------------------
    {"format", "version", "family": "SequenceModel", "dtype",
     "vector_field":  a vector field spec as above,
     "d_out":         readout size,
     "interpolation": "zoh" | "linear" | "cubic"   how input samples become x(t) (see gnode.Control),
     "h0":            "learnable" | "zeros",
     "solver":        {"alg": "Tsit5()" or null (solve's default), "sensealg": repr or null, "engine",
                       "reltol", "abstol", "solve_kwargs": {plain values}, "solve_kwargs_not_exported": [names]},
     "parameters":    layout}
    flat = the vector field's flat vector (names prefixed "vector_field."), then "readout.weight" (d_out, N),
           "readout.bias" (d_out,), then "h0" (N,) if learnable.  y = readout.weight @ h + readout.bias.

Discrete baselines  ("format": "gnode.discrete_rnn"; families "DiscreteGRU", "DiscreteLSTM")
--------------------------------------------------------------------------------------------
    {"format", "version", "family", "dtype", "n", "d_in", "d_out", "h0", "time_gaps" (optional, default false:
     the gap to the next sample is an extra input channel), "parameters"}
    flat = torch's rnn.weight_ih_l0, rnn.weight_hh_l0, rnn.bias_ih_l0, rnn.bias_hh_l0 (torch's gate order),
           readout.weight, readout.bias, then h0 (and c0 for the LSTM) if learnable.
"""

from __future__ import annotations

import torch

from gnode.algorithms.parse import AlgorithmTextError, parse_algorithm, parse_sensealg
from gnode.models.baselines import DiscreteGRU, DiscreteLSTM
from gnode.models.flat import SPEC_VERSION, dtype_from_name
from gnode.models.gated import VECTOR_FIELD_FAMILIES
from gnode.models.mlp import FeedForward, LayerSpec
from gnode.models.sequence import SequenceModel

BASELINE_FAMILIES = {"DiscreteGRU": DiscreteGRU, "DiscreteLSTM": DiscreteLSTM}


def _require(spec: dict, keys: tuple[str, ...], where: str) -> None:
    if not isinstance(spec, dict):
        raise TypeError(f"{where} must be a dict (a model's spec()), got {type(spec).__name__}")
    missing = [k for k in keys if k not in spec]
    if missing:
        raise ValueError(f"{where} lacks the key(s) {missing}; was it written by model.spec()?")
    if spec.get("version") != SPEC_VERSION:
        raise ValueError(f"{where} has version {spec.get('version')!r}; this gnode reads version {SPEC_VERSION}")


def _network(arch: dict, d_in: int, dtype: torch.dtype, where: str) -> FeedForward:
    if not isinstance(arch, dict) or "layers" not in arch or "pre_activation" not in arch:
        raise ValueError(f"{where} must be {{'pre_activation': str, 'layers': [...]}}, got {arch!r}")
    layers = [LayerSpec.from_dict(d, where=f"{where}.layers[{i}]") for i, d in enumerate(arch["layers"])]
    return FeedForward(layers, d_in, arch["pre_activation"], dtype=dtype)


def _check_layout(model, spec: dict, where: str) -> None:
    want = [[name, list(shape)] for name, shape in spec["parameters"]]
    have = model.flat_layout()
    if want != have:
        raise ValueError(f"{where}: the 'parameters' layout {want} does not match the architecture's {have}")


def _load(model, flat: torch.Tensor | None, where: str):
    if flat is not None:
        if not isinstance(flat, torch.Tensor):
            raise TypeError(f"{where}: flat must be a 1-D tensor, got {type(flat).__name__}")
        model.load_flat(flat)
    return model


def _vector_field(spec: dict, flat: torch.Tensor | None):
    where = "vector field spec"
    _require(spec, ("family", "n", "d_in", "dtype", "tau", "learn_tau", "leak", "gate", "F", "G", "parameters"), where)
    family = spec["family"]
    if family not in VECTOR_FIELD_FAMILIES:
        raise ValueError(f"{where}: unknown family {family!r}; known: {sorted(VECTOR_FIELD_FAMILIES)}")
    dtype = dtype_from_name(spec["dtype"])
    n, d_in = int(spec["n"]), int(spec["d_in"])
    F = _network(spec["F"], d_in, dtype, "F")
    if bool(spec["gate"]) != (spec["G"] is not None):
        raise ValueError(f"{where}: 'gate' is {spec['gate']} but 'G' is {'null' if spec['G'] is None else 'given'}")
    G = _network(spec["G"], d_in, dtype, "G") if spec["G"] is not None else None
    for name, net in (("F", F), ("G", G)):
        if net is not None and (net.layers[0].spec.in_features != n or net.layers[-1].spec.out_features != n):
            raise ValueError(
                f"{where}: network {name} must map n={n} to n={n}, got "
                f"{net.layers[0].spec.in_features} -> {net.layers[-1].spec.out_features}"
            )
    model = VECTOR_FIELD_FAMILIES[family]._from_parts(
        n, d_in, F, G, float(spec["tau"]), bool(spec["learn_tau"]), bool(spec["leak"])
    )
    _check_layout(model, spec, where)
    return _load(model, flat, where)


def _rebuild_solver_object(text: str | None, parse, what: str):
    """The alg or sensealg whose repr is `text` (None stays None); one that cannot be rebuilt here, e.g. an
    engine's own method whose engine is not loaded, must be passed to from_spec explicitly."""
    if text is None:
        return None
    try:
        return parse(text)
    except AlgorithmTextError as e:
        raise ValueError(f"from_spec: cannot rebuild {what}={text!r} ({e}); pass {what}=... to from_spec") from None


def _sequence_model(spec: dict, flat: torch.Tensor | None, overrides: dict):
    where = "sequence model spec"
    _require(spec, ("vector_field", "d_out", "interpolation", "h0", "solver", "parameters"), where)
    vf = _vector_field(spec["vector_field"], None)
    solver = spec["solver"]
    kwargs = {
        "alg": overrides.pop("alg")
        if "alg" in overrides
        else _rebuild_solver_object(solver["alg"], parse_algorithm, "alg"),
        "sensealg": (
            overrides.pop("sensealg")
            if "sensealg" in overrides
            else _rebuild_solver_object(solver["sensealg"], parse_sensealg, "sensealg")
        ),
        "engine": solver["engine"],
        "reltol": solver["reltol"],
        "abstol": solver["abstol"],
        "solve_kwargs": dict(solver.get("solve_kwargs") or {}),
    }
    kwargs.update(overrides)
    model = SequenceModel(vf, int(spec["d_out"]), interpolation=spec["interpolation"], h0=spec["h0"], **kwargs)
    _check_layout(model, spec, where)
    return _load(model, flat, where)


def from_spec(spec: dict, flat: torch.Tensor | None = None, **overrides):
    """Rebuild the model that wrote `spec` (its `spec()`), with parameters from `flat` (its `flat_parameters()`).

    Without `flat` a vector field's parameters are zeros; the readouts and baselines keep their
    constructors' draws. The global random state is left as it was either way. For a sequence model, `overrides`
    (alg=, sensealg=, engine=, reltol=, abstol=, solve_kwargs=) replace the recorded solver settings; alg and
    sensealg are rebuilt from their reprs (`gnode.algorithms.parse`), options included, and must be passed
    when that fails (a method whose module is not loaded here). The layout in spec["parameters"] is checked
    against the rebuilt architecture.
    """
    if not isinstance(spec, dict) or "format" not in spec:
        raise TypeError("from_spec: spec must be the dict returned by a model's spec() (it has a 'format' key)")
    fmt = spec["format"]
    if fmt != "gnode.sequence_model" and overrides:
        raise TypeError(f"from_spec: overrides {sorted(overrides)} apply only to sequence models")
    with torch.random.fork_rng(devices=[]):  # constructors of nn.Linear/nn.GRU draw; keep the caller's RNG
        return _from_spec(spec, fmt, flat, overrides)


def _from_spec(spec: dict, fmt: str, flat, overrides: dict):
    if fmt == "gnode.vector_field":
        return _vector_field(spec, flat)
    if fmt == "gnode.sequence_model":
        return _sequence_model(spec, flat, dict(overrides))
    if fmt == "gnode.discrete_rnn":
        _require(spec, ("family", "dtype", "n", "d_in", "d_out", "h0", "parameters"), "discrete RNN spec")
        if spec["family"] not in BASELINE_FAMILIES:
            raise ValueError(f"from_spec: unknown family {spec['family']!r}; known: {sorted(BASELINE_FAMILIES)}")
        model = BASELINE_FAMILIES[spec["family"]](
            int(spec["n"]),
            int(spec["d_in"]),
            int(spec["d_out"]),
            h0=spec["h0"],
            time_gaps=bool(spec.get("time_gaps", False)),
            dtype=dtype_from_name(spec["dtype"]),
        )
        _check_layout(model, spec, "discrete RNN spec")
        return _load(model, flat, "discrete RNN spec")
    raise ValueError(
        f"from_spec: unknown format {fmt!r}; known: gnode.vector_field, gnode.sequence_model, gnode.discrete_rnn"
    )
