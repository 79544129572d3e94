"""Dense output from the recorded steps: per trajectory, find the accepted step holding each query time and
evaluate the method's interpolant there — one batched gather for all trajectories and times."""

from __future__ import annotations

import torch


class DenseHistory:
    """The accepted steps of every trajectory, ordered in time, without copying the recorded tensors.

    steps: the loop's per-iteration records (t0, dt, y0, K, accepted, seg); a trajectory's accepted
    iterations are found with a stable sort of `~accepted`, so step m of trajectory b is iteration
    order[m, b].
    """

    def __init__(self, stepper, rhs, steps, y_init: torch.Tensor, t_init: float, t_final: torch.Tensor, direction: float):
        self.stepper, self.rhs, self.direction = stepper, rhs, direction
        self.y_init, self.t_init, self.t_final = y_init, t_init, t_final
        B = y_init.shape[0]
        eps = torch.finfo(y_init.dtype).eps
        self.slack = 64 * eps * max(abs(t_init), float(t_final.abs().max()), 1.0)  # "at" a time, up to rounding
        self.reach = direction * t_final + self.slack  # (B,): queries beyond it are past where a trajectory stopped
        self.any_steps = bool(steps)
        if not steps:
            self.count = torch.zeros(B, dtype=torch.long, device=y_init.device)
            return
        t0, dt, y0, K, acc, seg = zip(*steps)
        self.t0, self.dt = torch.stack(t0), torch.stack(dt)  # (I, B)
        self.y0, self.K = torch.stack(y0), torch.stack(K)  # (I, B, n), (I, S, B, n)
        acc = torch.stack(acc)
        self.seg = torch.stack(seg) if seg[0] is not None else None
        self.order = torch.argsort((~acc).to(torch.int8), dim=0, stable=True)  # (I, B)
        self.count = acc.sum(0)
        starts = torch.gather(self.t0, 0, self.order) * direction
        m = torch.arange(starts.shape[0], device=starts.device)[:, None]
        self.starts = torch.where(m < self.count, starts, torch.full_like(starts, float("inf"))).T.contiguous()  # (B, M)

    def at_times(self, tq: torch.Tensor) -> torch.Tensor:
        """u at times tq (Q,), the same for every trajectory → (B, Q, n); NaN past where one stopped."""
        return self.at(tq[None, :].expand(self.y_init.shape[0], -1))

    def __call__(self, tq: torch.Tensor) -> torch.Tensor:
        """`at_times` for users (`sol(t)`): a time outside the solved span is an error, not a NaN."""
        d, lo = self.direction, self.direction * self.t_init - self.slack
        outside = (d * tq < lo) | (d * tq > self.reach.max())
        if outside.any():
            bad = float(tq[outside.nonzero()[0, 0]])
            end = float(self.t_final[(d * self.t_final).argmax()])
            raise ValueError(f"dense output asked at t = {bad:.6g}, outside the solved span "
                             f"[{self.t_init:.6g}, {end:.6g}]")
        return self.at_times(tq)

    def at(self, t: torch.Tensor) -> torch.Tensor:
        """u of trajectory b at its own times t[b]: t (B,) → (B, n), or (B, Q) → (B, Q, n)."""
        tt = t[:, None] if t.ndim == 1 else t
        B, Q = tt.shape
        rows = torch.arange(B, device=t.device)[:, None].expand(B, Q).reshape(-1)
        m = None
        if self.any_steps:
            m = torch.searchsorted(self.starts, (self.direction * tt).contiguous(), right=True).reshape(-1) - 1
        u = self.at_rows(tt.reshape(-1), rows, m).reshape(B, Q, -1)
        return u[:, 0] if t.ndim == 1 else u

    def at_rows(self, t: torch.Tensor, rows: torch.Tensor, m: torch.Tensor | None = None) -> torch.Tensor:
        """u of trajectory rows[p] at time t[p], for P arbitrary pairs → (P, n); `m`: the steps' ranks, if known."""
        d = self.direction
        if not self.any_steps:
            y_init = self.y_init[rows]
            at_start = (t - self.t_init).abs() <= self.slack
            return torch.where(at_start[:, None], y_init, torch.full_like(y_init, float("nan")))
        count = self.count[rows]
        if m is None:
            m = torch.searchsorted(self.starts[rows], (d * t)[:, None].contiguous(), right=True)[:, 0] - 1
        m = torch.minimum(m.clamp(min=0), (count - 1).clamp(min=0))
        it = self.order[m, rows]  # iteration holding each pair's step
        t0, dt = self.t0[it, rows], self.dt[it, rows]
        y0, K = self.y0[it, rows], self.K[it, :, rows].transpose(0, 1)  # (P, n), (S, P, n)
        theta = ((t - t0) / torch.where(dt != 0, dt, torch.ones_like(dt))).clamp(0, 1)  # dt = 0: a zero step
        if self.stepper.c_dense:
            seg = None if self.seg is None else self.seg[it, rows]
            K = self.stepper.extra_stages(self.rhs, t0, y0, dt, K, seg, rows)
        u = self.stepper.interpolate(y0, dt, K, theta)
        # a trajectory that failed before its first step has only its initial state
        u = torch.where((count == 0)[:, None], self.y_init[rows], u)
        valid = d * t <= self.reach[rows]
        return torch.where(valid[:, None], u, torch.full_like(u, float("nan")))

    def accepted_steps(self):
        """(t0, dt, valid) of every trajectory's accepted steps in time order, rank-major: each (M, B)."""
        t0 = torch.gather(self.t0, 0, self.order)
        dt = torch.gather(self.dt, 0, self.order)
        valid = torch.arange(t0.shape[0], device=t0.device)[:, None] < self.count[None, :]
        return t0, dt, valid
