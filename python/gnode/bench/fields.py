"""The benchmark's vector fields re-implemented outside torch: NumPy (for the SciPy references), mpmath (for
extended-precision references) and JAX (for diffrax).

A gnODE-family model (`gnode.models.GatedNODE` and its reductions) is read into `GnodeWeights` — its
architecture from `spec()` and its weights by parameter name — and rebuilt from those alone:

    tau dh/dt = G(h, x) * (-h + F(h, x)),  F, G: s_0 = phi_pre(h), s_{l+1} = phi_l(W_l s_l [+ U x] + b_l)

(without the leak the -h is dropped, without a gate G = 1; see `gnode.models.mlp`). The NumPy version also
gives the exact Jacobian J = tau^-1 [diag(G) (dF/dh - I) + diag(F - h) dG/dh] for SciPy's Radau. The JAX
version takes the weights as a dict of arrays keyed by the torch parameter names, so a JAX gradient maps
back onto `problem.params` one to one. Being independent code, these copies also cross-check the torch model
(tests/test_bench_fields.py).

The classic stiff problems of `gnode.bench.problems` get JAX versions here (`CLASSIC_JAX`), written from the
same formulas.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from gnode.bench import problems


@dataclass(frozen=True)
class LayerWeights:
    W: np.ndarray  # (out, in)
    U: np.ndarray | None  # (out, d_in)
    b: np.ndarray  # (out,)
    activation: str
    names: tuple[str, str | None, str]  # the torch parameter names of W, U, b


@dataclass(frozen=True)
class NetworkWeights:
    pre_activation: str
    layers: tuple[LayerWeights, ...]


@dataclass(frozen=True)
class GnodeWeights:
    """A gnODE-family vector field as plain float64 arrays; `from_model` reads one from a torch model."""

    n: int
    d_in: int
    tau: float
    leak: bool
    F: NetworkWeights
    G: NetworkWeights | None
    tau_name: str | None = None  # "log_tau" when tau is learnable

    @classmethod
    def from_model(cls, model) -> GnodeWeights:
        spec = getattr(model, "spec", None)
        if not callable(spec):
            raise TypeError(
                f"{type(model).__name__} is not a gnODE-family model (no spec()); only "
                "gnode.models.GatedNODE and its reductions can be rebuilt outside torch"
            )
        s = spec()
        if s.get("format") != "gnode.vector_field":
            raise TypeError(f"{type(model).__name__}.spec() is not a vector-field spec (format {s.get('format')!r})")
        params = {k: v.detach().cpu().double().numpy() for k, v in model.named_parameters()}

        def net(name):
            arch = s[name]
            if arch is None:
                return None
            layers = []
            for i, layer in enumerate(arch["layers"]):
                w, u, b = f"{name}.layers.{i}.weight", f"{name}.layers.{i}.input_weight", f"{name}.layers.{i}.bias"
                layers.append(
                    LayerWeights(
                        params[w], params.get(u), params[b], layer["activation"], (w, u if u in params else None, b)
                    )
                )
            return NetworkWeights(arch["pre_activation"], tuple(layers))

        return cls(
            int(s["n"]),
            int(s["d_in"]),
            float(s["tau"]),
            bool(s["leak"]),
            net("F"),
            net("G"),
            "log_tau" if s.get("learn_tau") else None,
        )

    @property
    def smooth(self) -> bool:
        """Whether every activation is analytic (no ReLU): what a Taylor-series (mpmath) reference needs."""
        nets = [self.F] + ([self.G] if self.G is not None else [])
        acts = {layer.activation for net in nets for layer in net.layers} | {net.pre_activation for net in nets}
        return "relu" not in acts


# --------------------------------------------------------------------------------------------------- NumPy

_NP_ACT = {
    "identity": (lambda a: a, lambda a, s: np.ones_like(a)),
    "tanh": (np.tanh, lambda a, s: 1 - s * s),
    "relu": (lambda a: np.maximum(a, 0.0), lambda a, s: (a > 0).astype(a.dtype)),
    "sigmoid": (lambda a: 0.5 * (1 + np.tanh(0.5 * a)), lambda a, s: s * (1 - s)),  # overflow-free form
}


def _np_net(net: NetworkWeights, h: np.ndarray, x, jac: bool):
    fn, dfn = _NP_ACT[net.pre_activation]
    s = fn(h)
    J = np.diag(dfn(h, s)) if jac else None
    for layer in net.layers:
        a = layer.W @ s + layer.b
        if layer.U is not None and x is not None:
            a = a + layer.U @ x
        fn, dfn = _NP_ACT[layer.activation]
        s = fn(a)
        if jac:
            J = dfn(a, s)[:, None] * (layer.W @ J)
    return s, J


def numpy_rhs(w: GnodeWeights):
    """f(t, h (n,), x (d_in,) or None) → dh/dt (n,) in float64 NumPy."""

    def f(t, h, x=None):
        F, _ = _np_net(w.F, h, x, False)
        drive = F - h if w.leak else F
        if w.G is not None:
            drive = _np_net(w.G, h, x, False)[0] * drive
        return drive / w.tau

    return f


def numpy_jacobian(w: GnodeWeights):
    """J(t, h, x) = d(dh/dt)/dh (n, n), exact (module docstring)."""
    eye = np.eye(w.n)

    def jac(t, h, x=None):
        F, JF = _np_net(w.F, h, x, True)
        resid = F - h if w.leak else F
        J = JF - eye if w.leak else JF
        if w.G is not None:
            G, JG = _np_net(w.G, h, x, True)
            J = G[:, None] * J + resid[:, None] * JG
        return J / w.tau

    return jac


# -------------------------------------------------------------------------------------------------- mpmath


def mp_rhs(w: GnodeWeights):
    """f(t, h, x) on lists of mpmath numbers, in the working precision of `mpmath.mp` (smooth fields only)."""
    import mpmath as mp

    if not w.smooth:
        raise ValueError(
            "an mpmath (Taylor series) reference needs an analytic vector field; this one has ReLU "
            "activations, whose kinks break the series"
        )
    acts = {"identity": lambda a: a, "tanh": mp.tanh, "sigmoid": lambda a: 1 / (1 + mp.exp(-a))}

    def net(nw: NetworkWeights, h, x):
        s = [acts[nw.pre_activation](v) for v in h]
        for layer in nw.layers:
            W, b = layer.W.tolist(), layer.b.tolist()
            U = layer.U.tolist() if layer.U is not None and x is not None else None
            a = []
            for i in range(len(b)):
                terms = [mp.mpf(W[i][j]) * s[j] for j in range(len(s))]
                if U is not None:
                    terms += [mp.mpf(U[i][j]) * x[j] for j in range(len(x))]
                a.append(mp.fsum(terms) + mp.mpf(b[i]))
            s = [acts[layer.activation](v) for v in a]
        return s

    tau = mp.mpf(w.tau)

    def f(t, h, x=None):
        F = net(w.F, h, x)
        drive = [Fi - hi for Fi, hi in zip(F, h)] if w.leak else F
        if w.G is not None:
            drive = [g * d for g, d in zip(net(w.G, h, x), drive)]
        return [d / tau for d in drive]

    return f


# ----------------------------------------------------------------------------------------------------- JAX


def jax_gnode(w: GnodeWeights):
    """(fn, params): fn(h (n,), params, x (d_in,) or None) → dh/dt (n,) in JAX; params: {torch name: array}."""
    import jax.nn
    import jax.numpy as jnp

    acts = {"identity": lambda a: a, "tanh": jnp.tanh, "relu": jax.nn.relu, "sigmoid": jax.nn.sigmoid}
    params = {}
    for net in (w.F, w.G):
        if net is None:
            continue
        for layer in net.layers:
            for name, value in zip(layer.names, (layer.W, layer.U, layer.b)):
                if name is not None:
                    params[name] = jnp.asarray(value)
    if w.tau_name is not None:
        params[w.tau_name] = jnp.asarray(math.log(w.tau))

    def net_fn(nw, p, h, x):
        s = acts[nw.pre_activation](h)
        for layer in nw.layers:
            wn, un, bn = layer.names
            a = p[wn] @ s + p[bn]
            if un is not None and x is not None:
                a = a + p[un] @ x
            s = acts[layer.activation](a)
        return s

    def fn(h, p, x=None):
        F = net_fn(w.F, p, h, x)
        drive = F - h if w.leak else F
        if w.G is not None:
            drive = net_fn(w.G, p, h, x) * drive
        tau = jnp.exp(p[w.tau_name]) if w.tau_name is not None else w.tau
        return drive / tau

    return fn, params


def _jax_field(terms):
    def f(y):
        import jax.numpy as jnp

        return jnp.stack(terms(y))

    return f


CLASSIC_JAX = {
    name: _jax_field(terms)
    for name, terms in (
        ("robertson", problems.robertson_terms),
        ("vanderpol", problems.vanderpol_terms),
        ("hires", problems.hires_terms),
        ("oregonator", problems.oregonator_terms),
    )
}
"""name → f(y (n,)) of the autonomous classic problems: the formulas of `gnode.bench.problems`, stacked by JAX."""
