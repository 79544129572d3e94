"""Automatic stiffness switching, per trajectory: an explicit stepper and a stiff one behind one step.

Each trajectory carries a mode (explicit or stiff) and a signed count of consecutive stiffness verdicts
(OrdinaryDiffEq.jl's AutoSwitch, see `gnode.algorithms.auto`). A step runs the explicit method on the
trajectories in explicit mode and the stiff method on the others (each on its own rows, so neither pays for
the other), and the verdict on an accepted step is made at the start of the next one.

The loop sees one method: K is laid out as [body, mode, f1]: body holds the explicit method's stages on
explicit rows and the stiff interpolant's monomial coefficients (zero-padded) on stiff rows, mode is 1.0 on
stiff rows, and f1 = f(t1, y1) comes last when the explicit method is FSAL (so is this stepper). Evaluations
differ per row, so `stages` is 1 and the step reports its own in `nf`.
"""

from __future__ import annotations

import torch

from gnode.algorithms.auto import AbstractAutoSwitch


class AutoSwitchStepper:
    def __init__(self, alg: AbstractAutoSwitch, nonstiff, stiff):
        self.alg, self.nonstiff, self.stiff = alg, nonstiff, stiff
        self.fsal = nonstiff.fsal
        self.stages = 1  # evaluations are counted by the step itself (they differ per trajectory)
        self.body = nonstiff.stages
        self.c_dense = nonstiff.c_dense
        self.n_extra = len(nonstiff.c_dense)
        c = nonstiff.c
        if len(c) < 2 or c[-1] != 1 or c[-2] != 1:
            raise ValueError(f"{alg.name}: the stiffness estimate needs the explicit method's last two stages at "
                             f"c = 1, which {alg.nonstiff.name} does not have")
        degree = stiff.dense.shape[1]
        if degree > self.body:
            raise ValueError(f"{alg.name}: the interpolant of {alg.stiffalg.name} (degree {degree}) does not fit "
                             f"in the {self.body} stages of {alg.nonstiff.name}")

    def session(self, cfg, batch: int) -> AutoSwitchSession:
        return AutoSwitchSession(self, cfg, batch)

    # -- dense output -------------------------------------------------------------------------------------------

    def extra_stages(self, rhs, t, y, dt, K, seg, rows):
        """The explicit interpolant's lazy stages (Vern7), evaluated only at points on explicit steps."""
        b = self.body
        body, tail = K[:b], K[b:]
        explicit = tail[0, :, 0] < 0.5
        extras = K.new_zeros(self.n_extra, *K.shape[1:])
        idx = explicit.nonzero()[:, 0]
        if idx.numel():
            sub = self.nonstiff.extra_stages(rhs, t[idx], y[idx], dt[idx], body[:, idx],
                                             None if seg is None else seg[idx], rows[idx])
            extras = extras.index_copy(1, idx, sub[b:])
        return torch.cat([body, extras, tail])

    def interpolate(self, y0, dt, K, theta):
        b = self.body
        with_extras = b + self.n_extra
        has_extras = self.n_extra > 0 and K.shape[0] >= with_extras + 1 + self.fsal
        explicit_K = K[:with_extras] if has_extras else K[:b]
        mode = K[with_extras if has_extras else b][:, 0]
        explicit = self.nonstiff.interpolate(y0, dt, explicit_K, theta)
        degree = self.stiff.dense.shape[1]
        powers = theta[:, None] ** torch.arange(1, degree + 1, device=theta.device, dtype=theta.dtype)
        stiff = y0 + torch.einsum("pm,mpn->pn", powers, K[:degree])
        return torch.where((mode > 0.5)[:, None], stiff, explicit)


class AutoSwitchSession:
    """One solve's per-trajectory modes, counts and last stiffness estimates."""

    def __init__(self, stepper: AutoSwitchStepper, cfg, batch: int):
        self.stepper, self.alg = stepper, stepper.alg
        self.stages, self.fsal, self.c_dense = stepper.stages, stepper.fsal, stepper.c_dense
        self.interpolate, self.extra_stages = stepper.interpolate, stepper.extra_stages
        stiff = stepper.stiff
        self.stiff = stiff.session(cfg, batch) if hasattr(stiff, "session") else stiff
        self.batch = batch
        self.mode = None

    def step(self, rhs, t, y, dt, k1, seg):
        B, n = y.shape
        alg, st = self.alg, self.stepper
        if self.mode is None:
            self.mode = torch.full((B,), bool(alg.stiffalgfirst), dtype=torch.bool, device=y.device)
            self.count = torch.zeros(B, dtype=torch.long, device=y.device)
            self.last_t = torch.full_like(t, float("nan"))
            self.last_dt = torch.zeros_like(t)
            self.last_rho = torch.zeros_like(t)
        switched = self._verdict(t)
        running = dt != 0
        stiff_rows = (self.mode & running).nonzero()[:, 0]
        explicit_rows = (~self.mode & running).nonzero()[:, 0]
        y1 = torch.zeros_like(y)
        err = torch.zeros_like(y)
        body = y.new_zeros(st.body, B, n)
        f1 = torch.zeros_like(y)
        rho = torch.zeros_like(t)
        nf = torch.zeros(B, dtype=torch.long, device=y.device)
        counters = {}
        if explicit_rows.numel():
            parts = self._explicit(rhs, t, y, dt, k1, seg, explicit_rows)
            y1, err, body, f1, rho, nf = _scatter(explicit_rows, parts, (y1, err, body, f1, rho, nf))
        if stiff_rows.numel():
            parts, more = self._stiff(rhs, t, y, dt, k1, seg, stiff_rows)
            y1, err, body, f1, rho, nf = _scatter(stiff_rows, parts, (y1, err, body, f1, rho, nf))
            for name, v in more.items():
                counters[name] = torch.zeros(B, dtype=torch.long, device=y.device).index_copy(0, stiff_rows, v)
        with torch.no_grad():
            self.last_t, self.last_dt, self.last_rho = t, dt, rho.detach()
        mode_row = self.mode.to(y.dtype)[:, None].expand(B, n)
        K = torch.cat([body, mode_row[None]] + ([f1[None]] if self.fsal else []))
        counters["nf"] = nf
        counters["nstiffswitch"] = switched.long()
        return y1, err, K, counters

    def _verdict(self, t):
        """Count the previous step's verdict where it was accepted (t moved); switch where the count says so."""
        alg = self.alg
        with torch.no_grad():
            accepted = (t != self.last_t) & (self.last_dt != 0)
            tol = torch.where(self.mode, torch.full_like(t, alg.stifftol), torch.full_like(t, alg.nonstifftol))
            stiff = self.last_rho * self.last_dt.abs() > alg.stability_size * tol
            up = torch.where(self.count < 0, torch.ones_like(self.count), self.count + 1)
            down = torch.where(self.count > 0, -torch.ones_like(self.count), self.count - 1)
            self.count = torch.where(accepted, torch.where(stiff, up, down), self.count)
            to_stiff = accepted & ~self.mode & (self.count > alg.maxstiffstep)
            to_explicit = accepted & self.mode & (self.count < -alg.maxnonstiffstep)
            switched = to_stiff | to_explicit
            self.mode = self.mode ^ switched
        return switched

    def _explicit(self, rhs, t, y, dt, k1, seg, rows):
        ns = self.stepper.nonstiff
        view, (ts, ys, dts, k1s, segs) = _rows_of(rhs, rows, t, y, dt, k1, seg)
        y1, err, K, counters = ns.step(view, ts, ys, dts, k1s, segs)
        # Hairer's estimate from the last two stages (both at t1), in the max norm of the componentwise ratios
        # max_i |f_i(g_s) - f_i(g_{s-1})| / |g_s,i - g_{s-1},i| as OrdinaryDiffEq.jl: the Euclidean ratio is a
        # lower bound that measured ~15% low on Robertson, which kept a stability-limited Tsit5 from switching.
        s = ns.stages
        with torch.no_grad():
            dtc = dts[:, None]
            dg = dtc * ns.combine(ns.a[s - 1] - _pad(ns.a[s - 2], s - 1), K)  # g_s - g_{s-1}
            dk = (K[s - 1] - K[s - 2]).abs()
            ratio = torch.where(dg != 0, dk / dg.abs().clamp(min=torch.finfo(dg.dtype).tiny), torch.zeros_like(dk))
            rho = ratio.amax(dim=-1)
        nf = torch.full_like(rows, s - 1) + counters.get("nf", 0)
        f1 = K[-1] if ns.fsal else torch.zeros_like(ys)
        return (y1, err, K, f1, rho, nf)

    def _stiff(self, rhs, t, y, dt, k1, seg, rows):
        stiff, st = self.stiff, self.stepper
        view, (ts, ys, dts, k1s, segs) = _rows_of(rhs, rows, t, y, dt, k1, seg)
        if stiff is st.stiff:  # a stateless stepper (Rosenbrock)
            y1, err, K, counters, rho = stiff.step_info(view, ts, ys, dts, k1s, segs)
        else:  # a session keeping per-trajectory state (ESDIRK): tell it which trajectories these are
            y1, err, K, counters, rho = stiff.step_info(view, ts, ys, dts, k1s, segs, rows)
        nf = (st.stiff.stages - 1) + counters.pop("nf", 0)
        if self.fsal:
            if st.stiff.fsal:
                f1 = K[-1]
            else:
                f1 = view(ts + dts, y1, segs)
                nf = nf + 1
        else:
            f1 = torch.zeros_like(ys)
        P = st.stiff.power_coefficients(dts, K)
        body = torch.cat([P, P.new_zeros(st.body - P.shape[0], *P.shape[1:])])
        nf = nf * torch.ones_like(rows)
        return (y1, err, body, f1, rho, nf), {k: v * torch.ones_like(rows) for k, v in counters.items()}


class _RowsView:
    """The right-hand side restricted to some rows of the batch (f is row-wise)."""

    def __init__(self, rhs, rows):
        self.rhs, self.rows = rhs, rows
        self.control = rhs.control

    def _rows(self, rows):
        return self.rows if rows is None else self.rows[rows]

    def __call__(self, t, y, seg=None, rows=None):
        return self.rhs(t, y, seg, self._rows(rows))

    def jacobian(self, t, y, seg=None, rows=None):
        return self.rhs.jacobian(t, y, seg, self._rows(rows))

    def time_derivative(self, t, y, f0, dt, seg=None, rows=None):
        return self.rhs.time_derivative(t, y, f0, dt, seg, self._rows(rows))


def _pad(v, size):
    return torch.cat([v, v.new_zeros(size - v.shape[0])])


def _rows_of(rhs, rows, t, y, dt, k1, seg):
    if rows.numel() == t.shape[0]:  # every row: no copies
        return rhs, (t, y, dt, k1, seg)
    return _RowsView(rhs, rows), (t[rows], y[rows], dt[rows], k1[rows], None if seg is None else seg[rows])


def _scatter(rows, parts, into):
    """Write each part (sub-batch along dim 0, or dim 1 for the (stages, B, n) body) into the full tensors."""
    out = []
    for part, full in zip(parts, into):
        dim = 1 if full.ndim == 3 else 0
        if dim == 1 and part.shape[0] != full.shape[0]:  # an explicit K (s, b, n) into the body
            part = part[: full.shape[0]]
        out.append(full.index_copy(dim, rows, part.to(full.dtype)))
    return out
