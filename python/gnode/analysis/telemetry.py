"""Stiffness telemetry along solved trajectories, per trajectory and per accepted step.

At the start (t, h) of every accepted step of every trajectory, with the input x(t) the step saw:

  rho(J)              the spectral radius of J = df/dh: exact eigenvalues for small n, else the Krylov
                      (Arnoldi) estimate from power iterates through JVPs (`gnode.analysis.spectra`);
  dt * rho(J) / bound the step against the method's real-axis stability bound (`gnode.analysis.stability`):
                      near or above 1, an explicit method's step was limited by stability rather than
                      accuracy — the practical sign of stiffness. With exact eigenvalues also
                      max_i |R(dt lambda_i)|, the linearised amplification of the step (> 1: outside the
                      stability region);
  tau / G_i           the gate timescales (min, max, spread = max / min over units) of a gated model;
  stiffness ratio     max|Re lambda| / min|Re lambda| over Re lambda < 0 — with its caveat: near a (nearly)
                      continuous attractor an eigenvalue sits at ~0 and the ratio is huge without anything
                      being fast (`gnode.analysis.spectra.stiffness_ratio`).

The step sizes come from the solution's step history (the torch engine's dense output keeps every
accepted step); for an engine without one, the telemetry is taken at the saved times with dt = NaN.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from gnode.analysis.spectra import spectral_radius_krylov, stiffness_ratio
from gnode.analysis.stability import amplification, stability_bound
from gnode.analysis.vector_field import jacobian_vector_product, unwrap_vector_field

EXACT_MAX_N = 64  # above this, "auto" uses the Krylov estimate instead of dense eigenvalues
METHODS = ("auto", "exact", "krylov")


@dataclass
class StiffnessTelemetry:
    """Per trajectory b and accepted step m (arrays (B, M); entries with valid = False are padding, NaN):

    t, dt        the step's start time and size;
    rho          spectral radius of J at the step's start;
    dt_rho       |dt| * rho;
    ratio        dt_rho / bound (0 for an unbounded, L-stable method);
    amplification  max_i |R(dt lambda_i)| (exact eigenvalues and an explicit RK method), else None;
    max_real     the largest Re lambda (> 0: locally expanding);
    stiffness_ratio  see the module docstring (NaN where no Re lambda < 0);
    tau_min, tau_max, tau_spread  gate timescales tau / G_i (min, max, max/min over units), None if ungated;
    bound        the method's real-axis stability bound; alg its name; method "exact" or "krylov".
    """

    t: torch.Tensor
    dt: torch.Tensor
    valid: torch.Tensor
    rho: torch.Tensor
    dt_rho: torch.Tensor
    ratio: torch.Tensor
    amplification: torch.Tensor | None
    max_real: torch.Tensor | None
    stiffness_ratio: torch.Tensor | None
    tau_min: torch.Tensor | None
    tau_max: torch.Tensor | None
    tau_spread: torch.Tensor | None
    bound: float
    alg: str
    method: str
    from_steps: bool

    def _limited(self) -> torch.Tensor:
        """1 where |dt| rho > 0.9 bound (a step limited by stability), 0 where not, NaN where dt is unknown."""
        hit = (self.ratio > 0.9).to(self.rho.dtype)
        return torch.where(torch.isnan(self.ratio), self.ratio, hit)

    def per_trajectory(self) -> dict[str, torch.Tensor]:
        """(B,) per trajectory: the largest rho, dt*rho/bound, gate spread, the smallest and largest
        timescale, and the fraction of steps with dt*rho above 0.9 of the bound (stability-limited)."""
        out = {
            "rho_max": _masked(self.rho, self.valid, "max"),
            "ratio_max": _masked(self.ratio, self.valid, "max"),
            "ratio_median": _masked(self.ratio, self.valid, "median"),
            "stability_limited_fraction": _masked(self._limited(), self.valid, "mean"),
            "steps": self.valid.sum(-1),
        }
        if self.tau_min is not None:
            out["tau_min"] = _masked(self.tau_min, self.valid, "min")
            out["tau_max"] = _masked(self.tau_max, self.valid, "max")
            out["tau_spread_max"] = _masked(self.tau_spread, self.valid, "max")
        return out

    def summary(self) -> dict:
        """Plain floats over every valid step of every trajectory (for a log line or a JSON report)."""
        v = self.valid
        s = {
            "alg": self.alg,
            "bound": self.bound,
            "method": self.method,
            "from_steps": self.from_steps,
            "points": int(v.sum()),
            "rho_max": _flat(self.rho, v, "max"),
            "rho_median": _flat(self.rho, v, "median"),
            "dt_rho_max": _flat(self.dt_rho, v, "max"),
            "ratio_max": _flat(self.ratio, v, "max"),
            "ratio_median": _flat(self.ratio, v, "median"),
            "stability_limited_fraction": _flat(self._limited(), v, "mean"),
        }
        if self.amplification is not None:
            s["amplification_max"] = _flat(self.amplification, v, "max")
        if self.max_real is not None:
            s["max_real_max"] = _flat(self.max_real, v, "max")
            s["stiffness_ratio_median"] = _flat(self.stiffness_ratio, v, "median")
            s["stiffness_ratio_max"] = _flat(self.stiffness_ratio, v, "max")
        if self.tau_min is not None:
            s["tau_min"] = _flat(self.tau_min, v, "min")
            s["tau_max"] = _flat(self.tau_max, v, "max")
            s["tau_spread_max"] = _flat(self.tau_spread, v, "max")
            s["tau_spread_median"] = _flat(self.tau_spread, v, "median")
        return s


def _masked(a: torch.Tensor, valid: torch.Tensor, how: str) -> torch.Tensor:
    """Row-wise reduction of a (B, M) over its valid, non-NaN entries; NaN for an empty row."""
    ok = valid & ~torch.isnan(a)
    out = []
    for row, m in zip(a, ok):
        vals = row[m]
        out.append(_reduce(vals, how) if vals.numel() else torch.tensor(float("nan"), dtype=a.dtype))
    return torch.stack(out) if out else a.new_zeros(0)


def _flat(a: torch.Tensor, valid: torch.Tensor, how: str) -> float:
    vals = a[valid & ~torch.isnan(a)]
    return float(_reduce(vals, how)) if vals.numel() else float("nan")


def _reduce(vals: torch.Tensor, how: str) -> torch.Tensor:
    return {"max": vals.max, "min": vals.min, "median": vals.median, "mean": vals.mean}[how]()


# ---- pointwise -----------------------------------------------------------------------------------------


def pointwise_telemetry(
    f,
    t: torch.Tensor,
    h: torch.Tensor,
    x: torch.Tensor | None = None,
    *,
    method: str = "auto",
    krylov_iters: int = 30,
    chunk: int = 4096,
    generator: torch.Generator | None = None,
) -> dict[str, torch.Tensor | None]:
    """Spectral quantities of f at P points: t (P,), h (P, n), x (P, d_in) or None.

    Returns a dict of (P,) tensors: rho, max_real, stiffness_ratio (None with method "krylov"), tau_min,
    tau_max, tau_spread (None if f has no `timescales`), and eigenvalues (P, n) (None with "krylov").
    method: "exact" (torch.linalg.eigvals of the Jacobian), "krylov" (JVPs only), "auto" (exact for
    n <= 64). Evaluated in chunks of `chunk` points to bound memory.
    """
    f = unwrap_vector_field(f)
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    n = h.shape[-1]
    exact = method == "exact" or (method == "auto" and n <= EXACT_MAX_N)
    gated = callable(getattr(f, "timescales", None))
    parts: dict[str, list] = {
        k: [] for k in ("rho", "max_real", "stiffness_ratio", "tau_min", "tau_max", "tau_spread", "eigenvalues")
    }
    gen = generator or torch.Generator(device=h.device).manual_seed(0)
    with torch.no_grad():
        for s in range(0, h.shape[0], chunk):
            tt, hh = t[s : s + chunk], h[s : s + chunk]
            xx = None if x is None else x[s : s + chunk]
            args = (tt, hh) if x is None and not isinstance(f, torch.nn.Module) else (tt, hh, xx)
            if exact:
                lam = torch.linalg.eigvals(_jacobian(f, args))
                parts["eigenvalues"].append(lam)
                parts["rho"].append(lam.abs().amax(-1))
                parts["max_real"].append(lam.real.amax(-1))
                parts["stiffness_ratio"].append(stiffness_ratio(lam))
            else:
                v0 = torch.randn(hh.shape, generator=gen, dtype=hh.dtype, device=hh.device)
                parts["rho"].append(spectral_radius_krylov(lambda v, a=args: _jvp(f, a, v), v0, krylov_iters))
            if gated:
                tau = f.timescales(*args)
                lo, hi = tau.amin(-1), tau.amax(-1)
                parts["tau_min"].append(lo)
                parts["tau_max"].append(hi)
                parts["tau_spread"].append(hi / lo)
    return {k: (torch.cat(v) if v else None) for k, v in parts.items()}


def _jacobian(f, args) -> torch.Tensor:
    structured = getattr(f, "jacobian", None)
    if callable(structured):
        return structured(*args)
    h = args[1]
    with torch.enable_grad():
        hh = h.detach().requires_grad_(True)
        out = f(args[0], hh, *args[2:])
        rows = [
            torch.autograd.grad(out[:, i].sum(), hh, retain_graph=i + 1 < out.shape[1])[0] for i in range(out.shape[1])
        ]
    return torch.stack(rows, dim=1)


def _jvp(f, args, v) -> torch.Tensor:
    t, h, rest = args[0], args[1], args[2:]
    return jacobian_vector_product(lambda hh: f(t, hh, *rest), h, v)


# ---- along a solution ----------------------------------------------------------------------------------


def _step_points(sol, inputs):
    """(t (B, M), dt (B, M), valid (B, M), h (B, M, n), x (B, M, d) or None, from_steps) from the solution's
    accepted steps when it keeps them, else from its saved values."""
    hist = sol.interp
    control = inputs if inputs is not None else getattr(getattr(hist, "rhs", None), "control", None)
    if callable(getattr(hist, "accepted_steps", None)) and getattr(hist, "any_steps", True):
        t0, dt, valid = (a.T.contiguous() for a in hist.accepted_steps())  # (B, M)
        t0 = torch.where(valid, t0, torch.full_like(t0, float(hist.t_init)))
        with torch.no_grad():
            h = hist.at(t0)  # the interpolant at theta = 0 is the step's start state
        from_steps = True
    else:
        B, T = sol.u.shape[:2]
        t0 = sol.t[None, :].expand(B, T).contiguous()
        dt = torch.full_like(t0, float("nan"))
        h = sol.u.detach()
        valid = torch.isfinite(h).all(-1)
        from_steps = False
    valid = valid & torch.isfinite(h).all(-1)
    h = torch.where(valid[..., None], h, torch.zeros_like(h))
    x = None
    if control is not None:
        B, M = t0.shape
        rows = torch.arange(B, device=t0.device)[:, None].expand(B, M).reshape(-1)
        if control.batch == 1:
            rows = torch.zeros_like(rows)
        # the segment a step starting at t lies in (right-continuous), as the solver used it
        x = control.evaluate(t0.reshape(-1).to(control.times.dtype), None, rows).reshape(B, M, -1).detach()
    return t0, dt, valid, h.detach(), x, from_steps


def stiffness_telemetry(
    model,
    sol,
    *,
    inputs=None,
    alg=None,
    method: str = "auto",
    krylov_iters: int = 30,
    max_points: int | None = None,
    stability_bound_override: float | None = None,
) -> StiffnessTelemetry:
    """Telemetry (module docstring) of `model`'s vector field along the solution `sol` of its ODE.

    model:   the vector field that was solved (a gnODE-family field, a `SequenceModel`, or a row-wise f).
    sol:     the `ODESolution` (from `gnode.solve`, or `SequenceModel(...).sol`).
    inputs:  the problem's `gnode.Control` if it had inputs; default: the one the torch engine kept.
    alg:     the method (default `sol.alg`), for its stability bound; `stability_bound_override` replaces it.
    method:  "auto" | "exact" | "krylov" (see `pointwise_telemetry`).
    max_points: evaluate at most about this many (trajectory, step) points, taking every k-th step of each
             trajectory (the rest are marked invalid); None: all.
    """
    f = unwrap_vector_field(model)
    alg = alg if alg is not None else sol.alg
    bound = stability_bound_override if stability_bound_override is not None else stability_bound(alg)
    if not (isinstance(bound, (int, float)) and bound > 0):
        raise ValueError(f"the stability bound must be a positive number (or inf), got {bound!r}")
    t0, dt, valid, h, x, from_steps = _step_points(sol, inputs)
    if x is None and (getattr(f, "d_in", 0) or 0) > 0:
        raise ValueError(
            f"the model takes d_in={f.d_in} inputs but the solution keeps no record of them "
            f"({getattr(sol, 'engine', '?')} engine); pass inputs= the problem's gnode.Control"
        )
    B, M = t0.shape
    if max_points is not None:
        if not (isinstance(max_points, int) and max_points >= 1):
            raise ValueError(f"max_points must be a positive integer or None, got {max_points!r}")
        stride = max(1, math.ceil(B * M / max_points))
        keep = torch.zeros(M, dtype=torch.bool, device=valid.device)
        keep[::stride] = True
        valid = valid & keep[None, :]
    like = next(f.parameters()).detach() if isinstance(f, torch.nn.Module) else h
    flat_valid = valid.reshape(-1)
    idx = flat_valid.nonzero()[:, 0]
    hp = h.reshape(B * M, -1)[idx].to(like.dtype)
    tp = t0.reshape(-1)[idx].to(like.dtype)
    xp = None if x is None else x.reshape(B * M, -1)[idx].to(like.dtype)
    pts = pointwise_telemetry(f, tp, hp, xp, method=method, krylov_iters=krylov_iters)

    def scatter(v):
        if v is None:
            return None
        out = torch.full((B * M,), float("nan"), dtype=v.dtype, device=v.device)
        out[idx.to(v.device)] = v
        return out.reshape(B, M)

    rho = scatter(pts["rho"])
    dtv = dt.to(rho.dtype).abs()
    dt_rho = dtv * rho
    ratio = (
        dt_rho / bound if math.isfinite(bound) else torch.where(torch.isnan(dt_rho), dt_rho, torch.zeros_like(dt_rho))
    )
    amp = None
    if pts["eigenvalues"] is not None:
        z = dtv.reshape(-1)[idx][:, None].to(pts["eigenvalues"].dtype) * pts["eigenvalues"]
        a = amplification(alg, z)
        amp = None if a is None else scatter(a.amax(-1))
    valid_out = valid & ~torch.isnan(rho)
    return StiffnessTelemetry(
        t=torch.where(valid_out, t0, torch.full_like(t0, float("nan"))),
        dt=dt,
        valid=valid_out,
        rho=rho,
        dt_rho=dt_rho,
        ratio=ratio,
        amplification=amp,
        max_real=scatter(pts["max_real"]),
        stiffness_ratio=scatter(pts["stiffness_ratio"]),
        tau_min=scatter(pts["tau_min"]),
        tau_max=scatter(pts["tau_max"]),
        tau_spread=scatter(pts["tau_spread"]),
        bound=float(bound),
        alg=getattr(alg, "name", str(alg)),
        method="exact" if pts["eigenvalues"] is not None else "krylov",
        from_steps=from_steps,
    )


def telemetry_summary(model, sol, *, max_points: int = 2048) -> dict[str, float]:
    """A few floats for a training log line, from the solution of one batch: the largest rho(J) and
    dt*rho/bound, the fraction of stability-limited steps, the gate timescales' extremes and spread, and
    the median stiffness ratio. About `max_points` points are evaluated (cheap: one Jacobian each).
    Returns {} when there is no solution (a discrete-time model's forward gives sol = None)."""
    if sol is None:
        return {}
    s = stiffness_telemetry(model, sol, max_points=max_points).summary()
    keys = (
        "rho_max",
        "ratio_max",
        "stability_limited_fraction",
        "tau_min",
        "tau_max",
        "tau_spread_max",
        "stiffness_ratio_median",
    )
    return {f"stiff_{k}": s[k] for k in keys if k in s}
