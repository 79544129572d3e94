"""Dense output from the recorded steps: per trajectory, find the accepted step holding each query time and
evaluate the method's interpolant there — one batched gather for all trajectories and times.

The loop records every attempt of its working batch, whose rows change when it compacts. The history keeps only
the accepted steps, flattened and sorted by trajectory (time order within one is the order of the attempts):
step m of trajectory b is entry offset[b] + m, and `starts` (B, M) holds the steps' start times for a batched
`searchsorted`. Interpolants that need extra stages (Vern7) get them here, once per (trajectory, step) asked for,
and the evaluations are counted in `extra_nf`.
"""

from __future__ import annotations

import copy

import torch

from gnode.engines.torch.stepper import AbstractLazyDense


class DenseHistory:
    """The accepted steps of every trajectory, in time order.

    records: the loop's (Record, rows) pairs; y_init, t_init: the initial states and time; t_final (B,): where each
    trajectory stopped; direction: ±1."""

    def __init__(
        self, stepper, rhs, records, y_init: torch.Tensor, t_init: float, t_final: torch.Tensor, direction: float
    ):
        self.stepper, self.rhs, self.direction = stepper, rhs, direction
        self.y_init, self.t_init, self.t_final = y_init, t_init, t_final
        B = y_init.shape[0]
        device = y_init.device
        eps = torch.finfo(y_init.dtype).eps
        self.slack = 64 * eps * max(abs(t_init), float(t_final.abs().max()), 1.0)  # "at" a time, up to rounding
        self.reach = direction * t_final + self.slack  # (B,): queries beyond it are past where a trajectory stopped
        self.extra_nf = torch.zeros(B, dtype=torch.long, device=device)
        self.count = torch.zeros(B, dtype=torch.long, device=device)
        self.any_steps = False
        if not records:
            return
        all_rows = torch.arange(B, device=device)
        accept = torch.cat([r.accept for r, _ in records])
        keep = accept.nonzero()[:, 0]
        if keep.numel() == 0:
            return
        self.any_steps = True
        row = torch.cat([all_rows if rows is None else rows for _, rows in records])[keep]
        order = torch.argsort(row, stable=True)  # by trajectory; attempts stay in time order within one
        sel = keep[order]
        self.row = row[order]

        def gather(leaf):
            return torch.cat(leaf)[sel]

        self.t0 = gather([r.t for r, _ in records])
        self.h = gather([r.h for r, _ in records])
        self.y0 = gather([r.y for r, _ in records])
        self.dense = tuple(gather([r.dense[i] for r, _ in records]) for i in range(len(records[0][0].dense)))
        self.seg = None if records[0][0].seg is None else gather([r.seg for r, _ in records])
        self.count = torch.bincount(self.row, minlength=B)
        self.offset = torch.cumsum(self.count, 0) - self.count
        rank = torch.arange(self.row.numel(), device=device) - self.offset[self.row]
        M = int(self.count.max())
        starts = torch.full((B, M), float("inf"), dtype=self.t0.dtype, device=device)
        starts[self.row, rank] = direction * self.t0
        self.starts = starts
        self._rank = rank
        self._extra = None  # lazily evaluated extra stages, per entry

    _TENSORS = ("y_init", "t_final", "reach", "count", "row", "t0", "h", "y0", "seg", "offset", "starts", "_rank")

    def tensors(self) -> tuple:
        """Every tensor the history holds (for `ctx.save_for_backward`, so that autograd frees them)."""
        names = [k for k in self._TENSORS if getattr(self, k, None) is not None]
        return tuple(getattr(self, k) for k in names) + tuple(getattr(self, "dense", ()))

    def skeleton(self) -> DenseHistory:
        """This history without its tensors: `skeleton.restore(tensors())` gives it back."""
        new = copy.copy(self)
        new._names = [k for k in self._TENSORS if getattr(self, k, None) is not None]
        new._n_dense = len(getattr(self, "dense", ()))
        for k in new._names:
            setattr(new, k, None)
        new.dense, new._extra = (), None
        return new

    def restore(self, tensors) -> DenseHistory:
        new = copy.copy(self)
        k = len(self._names)
        for name, v in zip(self._names, tensors[:k]):
            setattr(new, name, v)
        new.dense = tuple(tensors[k : k + self._n_dense])
        new.extra_nf = torch.zeros_like(new.y_init[:, 0], dtype=torch.long)
        return new

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
            raise ValueError(
                f"dense output asked at t = {bad:.6g}, outside the solved span [{self.t_init:.6g}, {end:.6g}]"
            )
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

    def entries(self, t: torch.Tensor, rows: torch.Tensor, m: torch.Tensor | None = None) -> torch.Tensor:
        """The index of the step holding trajectory rows[p] at time t[p] (the nearest one outside the span)."""
        if m is None:
            m = torch.searchsorted(self.starts[rows], (self.direction * t)[:, None].contiguous(), right=True)[:, 0] - 1
        count = self.count[rows]
        m = torch.minimum(m.clamp(min=0), (count - 1).clamp(min=0))
        return (self.offset[rows] + m).clamp(max=self.row.numel() - 1)

    def at_rows(self, t: torch.Tensor, rows: torch.Tensor, m: torch.Tensor | None = None) -> torch.Tensor:
        """u of trajectory rows[p] at time t[p], for P arbitrary pairs → (P, n); `m`: the steps' ranks, if known."""
        d = self.direction
        if not self.any_steps:
            y_init = self.y_init[rows]
            at_start = (t - self.t_init).abs() <= self.slack
            return torch.where(at_start[:, None], y_init, torch.full_like(y_init, float("nan")))
        e = self.entries(t, rows, m)
        t0, h, y0 = self.t0[e], self.h[e], self.y0[e]
        theta = ((t - t0) / torch.where(h != 0, h, torch.ones_like(h))).clamp(0, 1)  # h = 0: a zero step
        u = self.stepper.interpolate(y0, h, self.dense_at(e), theta)
        count = self.count[rows]
        # a trajectory that failed before its first step has only its initial state
        u = torch.where((count == 0)[:, None], self.y_init[rows], u)
        valid = d * t <= self.reach[rows]
        return torch.where(valid[:, None], u, torch.full_like(u, float("nan")))

    def dense_at(self, e: torch.Tensor) -> tuple:
        """The interpolant's data of entries e, with a lazy interpolant's extra stages (computed once per entry)."""
        dense = tuple(leaf[e] for leaf in self.dense)
        if not isinstance(self.stepper, AbstractLazyDense):
            return dense
        if self._extra is None:
            n_extra = self.stepper.n_extra
            K = self.dense[0]
            self._extra = (
                torch.zeros(K.shape[0], dtype=torch.bool, device=K.device),
                K.new_zeros(K.shape[0], n_extra, K.shape[2]),
            )
        have, extra = self._extra
        need = torch.unique(e[~have[e]])
        if need.numel():
            seg = None if self.seg is None else self.seg[need]
            rhs = self.rhs.local(seg, self.row[need])
            full, nf = self.stepper.extra_stages(
                rhs, self.t0[need], self.y0[need], self.h[need], tuple(leaf[need] for leaf in self.dense)
            )
            n_stage = self.dense[0].shape[1]
            extra = extra.index_copy(0, need, full[0][:, n_stage:])
            have = have.index_fill(0, need, True)
            self._extra = (have, extra)
            self.extra_nf = self.extra_nf.index_add(0, self.row[need], nf)
        return (torch.cat([dense[0], extra[e]], dim=1), *dense[1:])

    def accepted_steps(self):
        """(t0, h, valid) of every trajectory's accepted steps in time order, rank-major: each (M, B)."""
        B = self.y_init.shape[0]
        if not self.any_steps:
            z = self.y_init.new_zeros(0, B)
            return z, z, z.bool()
        M = self.starts.shape[1]
        t0 = self.t0.new_zeros(B, M).index_put((self.row, self._rank), self.t0)
        h = self.h.new_zeros(B, M).index_put((self.row, self._rank), self.h)
        valid = torch.arange(M, device=t0.device)[None, :] < self.count[:, None]
        return t0.T, h.T, valid.T
