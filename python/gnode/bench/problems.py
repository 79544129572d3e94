"""Classic stiff test problems and a stiff gnODE batch, each with a float64 SciPy reference.

    robertson     Robertson's chemical kinetics (1966), t in [0, 1e5]: rates 0.04, 1e4, 3e7.
    vanderpol     Van der Pol, mu = 1e3 (MATLAB's vdp1000), t in [0, 3000]: relaxation oscillation.
    hires         HIRES, Schäfer's 8-species plant-physiology model (Hairer & Wanner II, IV.10), t in [0, 321.8122].
    oregonator    Field–Noyes Oregonator as in Hairer & Wanner II, IV.10 (OREGO), t in [0, 360].
    gnode_batch   gnODE tau dh/dt = G(h) * (-h + tanh(W h)) with the gate biases spread so that the unit
                  timescales tau / G_i span 1e-4..1 (gnode.models.GatedNODE, structured Jacobian).

`StiffProblem.problem(batch)` builds a `gnode.ODEProblem` (float64 unless asked otherwise);
`StiffProblem.reference(times)` solves the same equations with SciPy's Radau (5th-order implicit RK) at a
tight tolerance with the exact Jacobian — the independent reference the stiff methods are checked against.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from gnode.problem import ODEProblem


@dataclass(frozen=True)
class StiffProblem:
    """A named stiff IVP, in torch (row-wise, for gnode) and in NumPy (for SciPy), with its exact Jacobian.

    f(t (B,), u (B, n)) -> (B, n); f_np(t, y (n,)) -> (n,); jac_np(t, y) -> (n, n); u0 (batch, n) or (n,);
    tspan; atol: the absolute tolerance that suits the components' sizes (Robertson's y2 is ~1e-5).
    """

    name: str
    f: Callable
    f_np: Callable
    jac_np: Callable
    u0: np.ndarray
    tspan: tuple[float, float]
    atol_scale: float = 1.0
    description: str = ""
    extra: dict = field(default_factory=dict, compare=False, repr=False)

    def problem(self, batch: int | None = None, dtype: torch.dtype = torch.float64) -> ODEProblem:
        u0 = torch.as_tensor(self.u0, dtype=dtype)
        if u0.ndim == 1:
            u0 = u0[None].expand(batch or 1, -1).clone()
        elif batch is not None and batch != u0.shape[0]:
            raise ValueError(f"{self.name}: this problem has a fixed batch of {u0.shape[0]}, asked for {batch}")
        f = self.f
        if isinstance(f, torch.nn.Module):
            f = f.to(dtype)
        return ODEProblem(f, u0, self.tspan)

    def reference(self, times, rtol: float = 1e-12, atol: float | None = None) -> np.ndarray:
        """u at `times` (T,) for every trajectory: (batch, T, n), by SciPy Radau with the exact Jacobian."""
        from scipy.integrate import solve_ivp

        atol = rtol * self.atol_scale if atol is None else atol
        times = np.asarray(times, dtype=np.float64)
        u0 = np.atleast_2d(np.asarray(self.u0, dtype=np.float64))
        out = []
        for b, y0 in enumerate(u0):
            sol = solve_ivp(
                lambda t, y, b=b: self.f_np(t, y, b),
                self.tspan,
                y0,
                method="Radau",
                t_eval=times,
                rtol=rtol,
                atol=atol,
                jac=lambda t, y, b=b: self.jac_np(t, y, b),
            )
            if sol.status != 0:
                raise RuntimeError(f"{self.name}: SciPy Radau failed on trajectory {b}: {sol.message}")
            out.append(sol.y.T)
        return np.stack(out)


# Each right-hand side is written once, as `terms(y) -> [dy_1/dt, ...]` in plain arithmetic on the components
# y[i], so that the same formula serves torch (`_torch_field`), NumPy (`_numpy_field`) and JAX
# (`gnode.bench.fields.CLASSIC_JAX`).


def _torch_field(terms):
    def f(t, u):
        return torch.stack(terms(u.unbind(-1)), -1)

    return f


def _numpy_field(terms):
    def f_np(t, y, b=0):
        return np.array(terms(y))

    return f_np


# ----------------------------------------------------------------------------------------------- Robertson


def robertson_terms(y):
    y1, y2, y3 = y[0], y[1], y[2]
    return [-0.04 * y1 + 1e4 * y2 * y3, 0.04 * y1 - 1e4 * y2 * y3 - 3e7 * y2 * y2, 3e7 * y2 * y2]


def _robertson_jac(t, y, b=0):
    _, y2, y3 = y
    return np.array([[-0.04, 1e4 * y3, 1e4 * y2], [0.04, -1e4 * y3 - 6e7 * y2, -1e4 * y2], [0.0, 6e7 * y2, 0.0]])


ROBERTSON = StiffProblem(
    "robertson",
    _torch_field(robertson_terms),
    _numpy_field(robertson_terms),
    _robertson_jac,
    np.array([1.0, 0.0, 0.0]),
    (0.0, 1e5),
    atol_scale=1e-6,
    description="Robertson (1966) kinetics; y2 ~ 1e-5, eigenvalues down to ~-1e4",
)


# --------------------------------------------------------------------------------------- Van der Pol mu=1e3
VDP_MU = 1e3


def vanderpol_terms(y):
    return [y[1], VDP_MU * (1 - y[0] * y[0]) * y[1] - y[0]]


def _vdp_jac(t, y, b=0):
    return np.array([[0.0, 1.0], [-2 * VDP_MU * y[0] * y[1] - 1, VDP_MU * (1 - y[0] ** 2)]])


VANDERPOL = StiffProblem(
    "vanderpol",
    _torch_field(vanderpol_terms),
    _numpy_field(vanderpol_terms),
    _vdp_jac,
    np.array([2.0, 0.0]),
    (0.0, 3000.0),
    description="Van der Pol, mu = 1e3 (vdp1000): slow manifolds joined by fast jumps",
)


# --------------------------------------------------------------------------------------------------- HIRES


def hires_terms(y):
    return [
        -1.71 * y[0] + 0.43 * y[1] + 8.32 * y[2] + 0.0007,
        1.71 * y[0] - 8.75 * y[1],
        -10.03 * y[2] + 0.43 * y[3] + 0.035 * y[4],
        8.32 * y[1] + 1.71 * y[2] - 1.12 * y[3],
        -1.745 * y[4] + 0.43 * y[5] + 0.43 * y[6],
        -280.0 * y[5] * y[7] + 0.69 * y[3] + 1.71 * y[4] - 0.43 * y[5] + 0.69 * y[6],
        280.0 * y[5] * y[7] - 1.81 * y[6],
        -280.0 * y[5] * y[7] + 1.81 * y[6],
    ]


def _hires_jac(t, y, b=0):
    J = np.zeros((8, 8))
    J[0, :3] = [-1.71, 0.43, 8.32]
    J[1, :2] = [1.71, -8.75]
    J[2, 2:5] = [-10.03, 0.43, 0.035]
    J[3, 1:4] = [8.32, 1.71, -1.12]
    J[4, 4:7] = [-1.745, 0.43, 0.43]
    J[5, 3:8] = [0.69, 1.71, -0.43 - 280.0 * y[7], 0.69, -280.0 * y[5]]
    J[6, 5:8] = [280.0 * y[7], -1.81, 280.0 * y[5]]
    J[7, 5:8] = [-280.0 * y[7], 1.81, -280.0 * y[5]]
    return J


HIRES = StiffProblem(
    "hires",
    _torch_field(hires_terms),
    _numpy_field(hires_terms),
    _hires_jac,
    np.array([1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0057]),
    (0.0, 321.8122),
    atol_scale=1e-3,
    description="HIRES (Schäfer 1975; Hairer & Wanner II, IV.10), 8 species",
)


# ---------------------------------------------------------------------------------------------- Oregonator


def oregonator_terms(y):
    y1, y2, y3 = y[0], y[1], y[2]
    return [77.27 * (y2 + y1 * (1 - 8.375e-6 * y1 - y2)), (y3 - (1 + y1) * y2) / 77.27, 0.161 * (y1 - y3)]


def _orego_jac(t, y, b=0):
    y1, y2, _ = y
    return np.array(
        [
            [77.27 * (1 - 2 * 8.375e-6 * y1 - y2), 77.27 * (1 - y1), 0.0],
            [-y2 / 77.27, -(1 + y1) / 77.27, 1 / 77.27],
            [0.161, 0.0, -0.161],
        ]
    )


OREGONATOR = StiffProblem(
    "oregonator",
    _torch_field(oregonator_terms),
    _numpy_field(oregonator_terms),
    _orego_jac,
    np.array([1.0, 2.0, 3.0]),
    (0.0, 360.0),
    description="Field–Noyes Oregonator (OREGO, Hairer & Wanner II, IV.10); y1 up to ~1e5",
)


# ------------------------------------------------------------------------------------------- gnODE batch


def stiff_gnode(
    n: int = 8,
    batch: int = 8,
    *,
    g_min: float = 1e-4,
    g_max: float = 0.9,
    tau: float = 1e-4,
    t1: float = 1.0,
    seed: int = 0,
    gain: float = 1.5,
) -> StiffProblem:
    """A gnODE tau dh/dt = G(h) * (-h + tanh(W h)) whose gates sit near g_i, log-spaced over [g_min, g_max]
    across the n units, so the unit timescales tau / G_i span tau/g_max .. tau/g_min (1.1e-4 .. 1 by
    default): stiff over t in [0, t1]. W has spectral radius ~ `gain` (> 1: the flow is not trivially
    contracting); the gate's input weights are small (0.1/√n) so that G stays near its bias.
    Built on `gnode.models.GatedNODE`, whose structured `jacobian` the stiff methods use."""
    from gnode.models import GatedNODE

    gen = torch.Generator().manual_seed(seed)
    regime = "stable" if gain < 1 else "critical" if gain == 1 else "chaotic"
    model = GatedNODE(n, tau=tau, init=regime, gain=gain, generator=gen, dtype=torch.float64)
    gates = torch.logspace(math.log10(g_min), math.log10(g_max), n, dtype=torch.float64)
    with torch.no_grad():
        layer = model.G.layers[-1]
        layer.weight.copy_(0.1 / math.sqrt(n) * torch.randn(n, n, generator=gen, dtype=torch.float64))
        layer.bias.copy_(torch.log(gates / (1 - gates)))
    for p in model.parameters():
        p.requires_grad_(False)
    u0 = torch.randn(batch, n, generator=gen, dtype=torch.float64).numpy()
    # the same field in NumPy for SciPy (a torch call per evaluation made the reference ~20x slower)
    W, b_f = model.F.layers[0].weight.numpy().copy(), model.F.layers[0].bias.numpy().copy()
    Wz, b_z = model.G.layers[0].weight.numpy().copy(), model.G.layers[0].bias.numpy().copy()

    def parts(y):
        F = np.tanh(W @ y + b_f)
        G = 1 / (1 + np.exp(-(Wz @ y + b_z)))
        return F, G

    def f_np(t, y, b=0):
        F, G = parts(y)
        return G * (F - y) / tau

    def jac_np(t, y, b=0):
        F, G = parts(y)
        dF = (1 - F**2)[:, None] * W - np.eye(n)
        dG = (G * (1 - G))[:, None] * Wz
        return (G[:, None] * dF + (F - y)[:, None] * dG) / tau

    with torch.no_grad():  # the NumPy copy is the model
        y = u0[0]
        torch_f = model(torch.zeros(1, dtype=torch.float64), torch.as_tensor(y)[None])[0].numpy()
        torch_J = model.jacobian(torch.zeros(1, dtype=torch.float64), torch.as_tensor(y)[None])[0].numpy()
    if not (
        np.allclose(f_np(0, y), torch_f, rtol=1e-12, atol=0)
        and np.allclose(jac_np(0, y), torch_J, rtol=1e-10, atol=1e-10 / tau)
    ):
        raise RuntimeError("stiff_gnode: the NumPy copy of the gnODE differs from GatedNODE; its layout changed?")

    return StiffProblem(
        f"gnode_n{n}_b{batch}",
        model,
        f_np,
        jac_np,
        u0,
        (0.0, t1),
        description=f"gnODE, n={n}, gates {g_min:g}..{g_max:g}, tau={tau:g}: timescales "
        f"{tau / g_max:.2g}..{tau / g_min:.2g}",
        extra={"model": model, "gates": gates},
    )


CLASSIC = (ROBERTSON, VANDERPOL, HIRES, OREGONATOR)
