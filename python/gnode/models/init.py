r"""Initialisation by dynamical regime: "stable", "critical" or "chaotic", with a gain g.

The derivation (mean field / random matrices; the paper's appendix A does it with dynamical mean-field
theory, Sompolinsky, Crisanti & Sommers 1988 for L = 1)
---------------------------------------------------------------------------------------------------
Take zero biases and phi(0) = 0 for every activation of F (identity, tanh, ReLU). Then F(0, 0) = 0 and,
with the leak, h = 0 is a fixed point of  tau dh/dt = G(h, x) * (-h + F(h, x))  at zero input. Its
linearisation is

    J = tau^-1 diag(G(0)) (J_F - I),    J_F = D_L W_{L-1} D_{L-1} ... D_1 W_0 D_0,

(the term diag(F - h) dG/dh vanishes at the fixed point), with D_{l+1} = diag(phi_l'(a_l)) the slopes of
layer l's activation phi_l and D_0 = diag(phi_pre'(0)) (the identity except in the rate form). Draw W_l
(N_{l+1} x N_l) with i.i.d. entries N(0, g_l^2 / N_l) (variance over the fan-in). In the mean-field limit
(large N) the D_l decouple from the W_l, the product J_F is R-diagonal (bi-unitarily invariant), and by the
single-ring theorem (Haagerup & Larsen 2000; Guionnet, Krishnapur & Zeitouni 2011) its eigenvalues fill a
disc whose radius is the root-mean-square singular value, rho^2 = tr(J_F J_F^T) / N. Peeling the product
one layer at a time (the width ratios N_{l+1}/N_l telescope to N_L / N_0 = 1):

    rho = sqrt(E[phi_pre'^2]) * prod_{l=0}^{L-1} g_l sqrt(E[phi_l'(a)^2])

E[phi'(a)^2] is the mean-square slope at the origin: 1 for identity and tanh (tanh'(0) = 1). A ReLU is not
differentiable at 0: at zero bias every pre-activation is exactly 0 at the origin, so the linearisation
is taken along a direction (h = eps v, eps -> 0+; the field is then piecewise linear in h). Along a random
v the pre-activations of each layer are symmetric about 0 (a Gaussian W times anything independent is
symmetric), so half of the units are on: E[relu'^2] = 1/2, i.e. each ReLU layer contributes 1/sqrt(2)
(the same factor that makes He initialisation, g = sqrt(2), preserve the norm through a ReLU layer).

With zero gate biases G(0) = sigmoid(0) = 1/2 in every unit, so the eigenvalues of J are those of J_F
shifted by -1 and scaled by 1/(2 tau): the leading one has real part (rho - 1) / (2 tau) (and (rho - 1)/tau
without a gate). Hence the regimes, with the gain g defined as the target radius rho:

    stable   rho = g < 1    (default g = 0.5)  the origin attracts; activity decays exponentially
    critical rho = g = 1                        marginal: activity near the origin persists (power law)
    chaotic  rho = g > 1    (default g = 2.0)   the origin repels; activity grows until the tanh saturates

For L = 1 the dynamics near the origin are linear, and for a Ginibre J_F the mean field gives
E|h(t)|^2 / |h(0)|^2 = e^(-2s) I_0(2 rho s) with s = G(0) t / tau: ~ e^(-2 (1 - rho) s) / sqrt(4 pi rho s), so
the norm decays as e^(-(1 - rho) s), as s^(-1/4) at criticality, and grows as e^((rho - 1) s).
At finite N the leading real part scatters around (rho - 1) G(0) / tau by about 0.04-0.07 G(0)/tau at
N = 256 and 0.02-0.05 G(0)/tau at N = 1000 (more for deeper ReLU stacks, whose eigenvalue density thins
towards the edge of the disc); the tests state their tolerances with the measured numbers.

**Critical gain.** rho = 1 requires prod_l g_l = 1 / prod_l sqrt(E[phi_l'^2]) = 2^(k/2) where k is the
number of ReLU layers of F (its hidden layers when phi_a = ReLU, i.e. k = L_h - 1 in the paper's
architecture). With equal gains per layer, g_l = 2^(k / (2 L_h)); we instead give each layer
g_l = rho^(1/L) / sqrt(E[phi_l'^2]) (sqrt(2) * rho^(1/L) after a ReLU), which keeps the norm of the signal
the same through every layer and has the same product. For L_h = 1: g_c = 1 (Sompolinsky et al.); for
L_h = 2 with a ReLU hidden layer: g_0 g_1 = sqrt(2).

The gate network G does not enter the linearisation at the origin (it multiplies F(0) - 0 = 0); its layers
get gain 1 (sqrt(2) after a ReLU, variance preserving). Input weights U get variance 1 / d_in. Biases are 0.

`origin_jacobian` and `leading_eigenvalue_at_origin` are the numerical check; tests/test_models_init.py
shows the three regimes at large N over many draws, and the trajectories from near the origin.
"""

from __future__ import annotations

import math

import torch

from gnode.models.mlp import FeedForward

REGIMES = ("stable", "critical", "chaotic")
DEFAULT_GAIN = {"stable": 0.5, "critical": 1.0, "chaotic": 2.0}


def resolve_gain(regime: str, gain: float | None) -> float:
    """The target radius rho for `regime`, checking that `gain` belongs to it."""
    if regime not in REGIMES:
        raise ValueError(f"init must be one of {', '.join(map(repr, REGIMES))}, got {regime!r}")
    if gain is None:
        return DEFAULT_GAIN[regime]
    if isinstance(gain, bool) or not isinstance(gain, (int, float)) or not math.isfinite(gain) or gain < 0:
        raise ValueError(f"gain must be a finite number >= 0, got {gain!r}")
    gain = float(gain)
    ok = {"stable": gain < 1, "critical": gain == 1, "chaotic": gain > 1}[regime]
    if not ok:
        need = {"stable": "< 1", "critical": "= 1 (or None)", "chaotic": "> 1"}[regime]
        raise ValueError(
            f"init={regime!r} needs gain {need}, got gain={gain}; pick the regime that matches "
            "the gain, or leave gain=None for the regime's default"
        )
    return gain


def layer_gains(net: FeedForward, rho: float) -> list[float]:
    """g_l = rho^(1/L) / sqrt(E[phi_l'^2]) (the first layer also divided by the pre-activation's factor)."""
    r = rho ** (1.0 / net.depth)
    gains = [r / math.sqrt(layer.act.mean_square_slope) for layer in net.layers]
    gains[0] /= math.sqrt(net.pre.mean_square_slope)
    return gains


def critical_gain(net: FeedForward) -> float:
    """prod_l g_l at the edge of chaos: 1 / prod_l sqrt(E[phi_l'^2]) (= 2^(k/2) for k ReLU layers)."""
    return math.prod(layer_gains(net, 1.0))


def _randn(p: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    device = generator.device if generator is not None else p.device
    return torch.randn(p.shape, generator=generator, dtype=p.dtype, device=device).to(p.device)


@torch.no_grad()
def init_network_(net: FeedForward, gains: list[float], generator: torch.Generator | None = None) -> None:
    """W_l ~ N(0, g_l^2 / N_l) (N_l the fan-in), U ~ N(0, 1 / d_in), b = 0, in place."""
    if len(gains) != net.depth:
        raise ValueError(f"need one gain per layer ({net.depth}), got {len(gains)}")
    for layer, g in zip(net.layers, gains):
        layer.weight.copy_(_randn(layer.weight, generator) * (g / math.sqrt(layer.weight.shape[1])))
        if layer.input_weight is not None:
            layer.input_weight.copy_(_randn(layer.input_weight, generator) / math.sqrt(layer.input_weight.shape[1]))
        layer.bias.zero_()


def init_flow_(
    net: FeedForward, regime: str = "critical", gain: float | None = None, generator: torch.Generator | None = None
) -> float:
    """Initialise F for `regime` (see the module docstring); returns the target radius rho."""
    rho = resolve_gain(regime, gain)
    init_network_(net, layer_gains(net, rho), generator)
    return rho


def init_gate_(net: FeedForward, generator: torch.Generator | None = None) -> None:
    """Initialise G: gain 1 per layer (sqrt(2) after a ReLU), zero biases, so G(0) = 1/2."""
    gains = [1.0 / math.sqrt(la.act.mean_square_slope) if i < net.depth - 1 else 1.0 for i, la in enumerate(net.layers)]
    gains[0] /= math.sqrt(net.pre.mean_square_slope)
    init_network_(net, gains, generator)


def origin_jacobian(
    model, *, direction: torch.Tensor | None = None, eps: float = 1e-7, generator: torch.Generator | None = None
) -> torch.Tensor:
    """The linearisation (n, n) of `model` (a GatedNODE) at the origin, at zero input.

    Evaluated at h = eps * v / |v| for a direction v (default: a random Gaussian one): for ReLU layers at zero
    bias the field is only piecewise linear at the origin and this is the linear piece along v (see the
    module docstring); for smooth activations it equals the Jacobian at 0 up to O(eps^2).
    """
    p = next(model.parameters())
    if direction is None:
        direction = torch.randn(
            model.n, generator=generator, dtype=p.dtype, device=generator.device if generator is not None else p.device
        ).to(p.device)
    h = (eps * direction / direction.norm()).reshape(1, -1)
    t = torch.zeros(1, dtype=p.dtype, device=p.device)
    with torch.no_grad():
        return model.jacobian(t, h)[0]


def leading_eigenvalue_at_origin(model, **kwargs) -> complex:
    """The eigenvalue of `origin_jacobian(model, **kwargs)` with the largest real part."""
    ev = torch.linalg.eigvals(origin_jacobian(model, **kwargs))
    return complex(ev[ev.real.argmax()])


def origin_rate(model) -> float:
    """mean G(0) / tau: the factor that scales J_F - I into the linearisation at the origin (1/(2 tau) at init)."""
    p = next(model.parameters())
    zero = torch.zeros(1, model.n, dtype=p.dtype, device=p.device)
    with torch.no_grad():
        g = model.gates(torch.zeros(1, dtype=p.dtype, device=p.device), zero)
        return float(g.mean()) / float(model.tau)


def predicted_leading_real_part(model, rho: float) -> float:
    """(rho - 1) G(0) / tau: the mean-field value of the leading real part at the origin."""
    return (rho - 1.0) * origin_rate(model)
