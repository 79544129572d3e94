"""Error metrics of a solve against a reference, as SciML's DiffEqDevTools defines them, and the gradient error.

With e = u - u_ref (absolute errors; DiffEqDevTools does not scale them), for a batch treated as one system:

    final  mean |e(t_end)|                     over the batch and components   (DiffEqDevTools `:final`)
    l2     sqrt(mean e(t_k)^2)                 over the saved times t_k, batch, components (`:l2`)
    linf   max |e(t_k)|                        over the same (`:l∞`)
    L2     sqrt(mean e(s_j)^2)                 at 100 dense-output times s_j = linspace(t0, t_end, 100) (`:L2`)
    Linf   max |e(s_j)|                        at the same (`:L∞`)

DiffEqDevTools' `appxtrue(sol, sol2)` takes the means with `recursive_mean` over every element, which for a
batch of equally sized trajectories is the mean over (batch, time, component); the same convention is kept
here. A NaN or Inf in the solution (a failed trajectory) makes every metric it touches `inf`, never a small
number, so a failure cannot pass for an accurate point.

Gradient error: ‖g - g_ref‖₂ / ‖g_ref‖₂ over all parameters (the relative error of dL/dθ).

Reference: DiffEqDevTools.jl, `src/test_solution.jl` (`appxtrue`) and `src/benchmark.jl` (WorkPrecision).
"""

from __future__ import annotations

import numpy as np

DENSE_POINTS = 100
METRICS = ("final", "l2", "linf", "L2", "Linf")


def dense_times(t0: float, t1: float, points: int = DENSE_POINTS) -> np.ndarray:
    """The dense-output times of the `L2`/`Linf` metrics: `points` equally spaced times from t0 to t1."""
    return np.linspace(float(t0), float(t1), points)


def _diff(u, ref, what: str) -> np.ndarray:
    u, ref = np.asarray(u, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    if u.shape != ref.shape:
        raise ValueError(
            f"{what}: the solution has shape {u.shape} but the reference has {ref.shape}; "
            "they must be (batch, time, n) at the same times"
        )
    e = u - ref
    e[~np.isfinite(e)] = np.inf  # NaN (a failed trajectory) counts as an infinite error
    return e


def rms(e: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(e)))) if e.size else float("nan")


def solution_errors(u_save, ref_save, u_dense=None, ref_dense=None) -> dict[str, float]:
    """`final`, `l2`, `linf` from the saved values u_save (batch, T, n) (the last time is t_end) against
    ref_save, and `L2`, `Linf` from the dense-output values u_dense (batch, 100, n) against ref_dense when
    given (see the module docstring for the formulas)."""
    e = _diff(u_save, ref_save, "saved values")
    out = {"final": float(np.mean(np.abs(e[:, -1]))), "l2": rms(e), "linf": float(np.max(np.abs(e)))}
    if u_dense is not None and ref_dense is not None:
        ed = _diff(u_dense, ref_dense, "dense output")
        out["L2"], out["Linf"] = rms(ed), float(np.max(np.abs(ed)))
    return out


def gradient_error(g, g_ref) -> float:
    """‖g - g_ref‖₂ / ‖g_ref‖₂ (inf when g is not finite; the absolute error when g_ref = 0)."""
    g, g_ref = np.asarray(g, dtype=np.float64).ravel(), np.asarray(g_ref, dtype=np.float64).ravel()
    if g.shape != g_ref.shape:
        raise ValueError(
            f"gradient has {g.size} entries but the reference gradient has {g_ref.size}; "
            "they must be over the same parameters in the same order"
        )
    if not np.isfinite(g).all():
        return float("inf")
    scale = np.linalg.norm(g_ref)
    err = np.linalg.norm(g - g_ref)
    return float(err / scale) if scale > 0 else float(err)
