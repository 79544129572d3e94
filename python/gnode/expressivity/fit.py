"""Fitting stacked generators to targets: does a model reproduce a trajectory of K features?

Each member r of an ensemble (`gnode.expressivity.ensemble`) is fitted to its own target y*_r (a
`FourierTarget`) by full-batch Adam on its normalised error

    NMSE_r = mean_j |y_r(t_j) - y*_r(t_j)|^2 / Var(y*_r)        (t_j the target's samples; 0 = perfect,
                                                               1 = no better than the best constant)

with the members' losses summed, so that every member gets exactly its own gradient: Adam is elementwise
and gradients are clipped per member, so the members never interact numerically (a member that blows up
leaves the others as they would be alone). They share the round's schedule only: the multiple-shooting
phases below, set by the longest target, and the stopping rule. The targets may differ in length (K); they
share the sample spacing, and each member's loss covers its own samples only.

Fitting a long oscillatory trajectory from its initial state alone (single shooting) runs into the
exploding and vanishing gradients of backpropagation through time and into poor local minima: in our runs a
3-D gnODE (L = 2, W = 32) given 300 steps of single shooting left 3 of 4 two-feature targets above NMSE 0.1
and all four four-feature ones above 0.39, where the same budget with multiple shooting brought all eight
below 0.04 (within 183 steps). So the fit
starts with multiple shooting (Bock & Plitt 1984; for neural ODEs, Turan & Jaeschke 2021): the target is cut
into segments of `segment_features` features, every segment after the first starts from a free state of its
own (initialised on the model's own trajectory), all segments of all members are integrated side by side
as one batch over one segment's time, and a penalty `continuity` * |end of segment j - start of j+1|^2 / n
pulls them into one trajectory. The segments double in length, phase after phase, until one covers the
whole target; the last `single_fraction` of the steps fit the whole trajectory from h0 alone, and only
those count: the best NMSE is taken there, from h0, never from the free states.

The training solve is RK4 at a fixed step (`steps_per_sample` per sample spacing: the targets' sampling
already forces that many steps), and the verdict is not: the best weights of every member are re-solved
with Tsit5 at tight tolerances (`check_reltol`), and a member reproduces its target when that NMSE is at
most epsilon. A fit that only works because of the discretisation does not count.

Discrete baselines (GRU, LSTM) step once per sample and need no solver.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass

import torch

from gnode.algorithms import RK4, Tsit5
from gnode.expressivity.ensemble import AbstractEnsemble, ODEEnsemble
from gnode.tasks.expressivity import FourierTarget


@dataclass(frozen=True)
class FitConfig:
    """How each member is fitted (module docstring).

    steps:            Adam steps at most (each one a full pass over every member's target).
    lr, lr_min:       Adam's learning rate, annealed by a cosine to lr * lr_min over `steps`.
    grad_clip:        clip each member's gradient norm (weights and free segment states) to this.
    segment_features: features per segment in the first multiple-shooting phase (0: single shooting only).
    continuity:       weight of the continuity penalty between segments.
    single_fraction:  share of `steps` spent on the whole trajectory from h0 at the end (the phases before
                      it split the rest equally).
    patience:         in the last phase, stop when no unfinished member improved its best NMSE by 1% in this
                      many steps (or when every member is at most epsilon).
    steps_per_sample: RK4 steps per sample spacing in training (ODE families).
    check_reltol, check_abstol: Tsit5's tolerances for the verdict re-solve.
    """

    steps: int = 1000
    lr: float = 3e-2
    lr_min: float = 0.05
    grad_clip: float = 1.0
    segment_features: int = 1
    continuity: float = 1.0
    single_fraction: float = 0.4
    patience: int = 300
    steps_per_sample: int = 2
    check_reltol: float = 1e-7
    check_abstol: float = 1e-9

    def __post_init__(self):
        def need(ok, what):
            if not ok:
                raise ValueError(f"FitConfig: {what}")

        for name in ("steps", "patience", "steps_per_sample"):
            v = getattr(self, name)
            need(
                isinstance(v, int) and not isinstance(v, bool) and v >= 1, f"{name} must be an integer >= 1, got {v!r}"
            )
        v = self.segment_features
        need(
            isinstance(v, int) and not isinstance(v, bool) and v >= 0,
            f"segment_features must be an integer >= 0, got {v!r}",
        )
        for name in ("lr", "grad_clip", "check_reltol", "check_abstol"):
            v = getattr(self, name)
            need(
                isinstance(v, (int, float)) and math.isfinite(v) and v > 0,
                f"{name} must be a positive number, got {v!r}",
            )
        need(
            isinstance(self.continuity, (int, float)) and math.isfinite(self.continuity) and self.continuity >= 0,
            f"continuity must be a number >= 0, got {self.continuity!r}",
        )
        for name in ("lr_min", "single_fraction"):
            v = getattr(self, name)
            need(isinstance(v, (int, float)) and 0 <= v <= 1, f"{name} must lie in [0, 1], got {v!r}")

    def as_dict(self) -> dict:
        return asdict(self)

    def phases(self, features: int) -> list[tuple[int, int]]:
        """[(segment length in features (0: the whole trajectory), steps), ...] for targets of up to `features`."""
        lengths = []
        f = self.segment_features
        while f and f < features:
            lengths.append(f)
            f *= 2
        if not lengths:
            return [(0, self.steps)]
        last = max(1, round(self.single_fraction * self.steps))
        each = (self.steps - last) // len(lengths)
        return [(f, each) for f in lengths] + [(0, self.steps - each * len(lengths))]


@dataclass
class FitOutcome:
    """What fitting one ensemble gave, per member: `nmse` the verdict (re-solved with Tsit5; the training
    solve for discrete models), `nmse_train` the best NMSE seen in training, `diverged` whether the member's
    training blew up (NaN or a failed solve), the run's steps and seconds, and `outputs` (R, S_max, d_out) the
    verdict's trajectories (for figures of example fits)."""

    nmse: list[float]
    nmse_train: list[float]
    diverged: list[bool]
    steps: int
    seconds: float
    outputs: torch.Tensor

    def reproduced(self, epsilon: float) -> list[bool]:
        return [math.isfinite(v) and v <= epsilon for v in self.nmse]


def _stack_targets(targets: list[FourierTarget], like: torch.Tensor):
    """(times (S_max,), values (R, S_max, D) zero-padded, lengths (R,), variances (R,))."""
    spacing = {round(float(t.times[1] - t.times[0]), 12) for t in targets}
    if len(spacing) != 1:
        raise ValueError(f"the targets of one fit must share their sample spacing, got {sorted(spacing)}")
    d_out = {t.values.shape[1] for t in targets}
    if len(d_out) != 1:
        raise ValueError(f"the targets of one fit must have the same number of outputs, got {sorted(d_out)}")
    longest = max(targets, key=lambda t: t.times.numel())
    s_max = longest.times.numel()
    values = torch.zeros(len(targets), s_max, d_out.pop(), dtype=like.dtype)
    for r, t in enumerate(targets):
        values[r, : t.times.numel()] = t.values.to(like.dtype)
    lengths = torch.tensor([t.times.numel() for t in targets])
    variances = torch.tensor([t.variance() for t in targets], dtype=like.dtype)
    return longest.times.to(like.dtype), values, lengths, variances


def _row_nmse(y: torch.Tensor, values: torch.Tensor, upto: torch.Tensor, variances: torch.Tensor) -> torch.Tensor:
    """(R,) NMSE of each row over its first upto[r] samples (y and values (R, S, D) over the same S)."""
    s = y.shape[1]
    mask = (torch.arange(s)[None, :] < upto[:, None]).to(y.dtype)  # (R, S)
    err = (y - values[:, :s]).pow(2).mean(-1)  # (R, S)
    err = torch.where(mask > 0, err, torch.zeros_like(err))  # padded samples (and what a failed row left there)
    return err.sum(1) / upto.to(y.dtype) / variances


def _segment_mask(lengths: torch.Tensor, segments: int, interval: int) -> torch.Tensor:
    """(R, J, interval + 1) True where sample i of segment j (global sample j * interval + i) is in member r's
    target."""
    j = torch.arange(segments)[:, None] * interval + torch.arange(interval + 1)[None, :]
    return j[None] < lengths[:, None, None]


def _segment_targets(values: torch.Tensor, segments: int, interval: int) -> torch.Tensor:
    """values (R, S, D) cut into (R, J, interval + 1, D) overlapping segments (zero past the end)."""
    R, S, D = values.shape
    padded = torch.zeros(R, segments * interval + 1, D, dtype=values.dtype)
    padded[:, : min(S, padded.shape[1])] = values[:, : padded.shape[1]]
    idx = torch.arange(segments)[:, None] * interval + torch.arange(interval + 1)[None, :]
    return padded[:, idx]


class _Shooting:
    """The free initial states of segments 1 .. J-1 of every member (segment 0 starts at h0), per state tensor."""

    def __init__(self, ensemble: AbstractEnsemble, times: torch.Tensor, interval: int, segments: int, solver: dict):
        with torch.no_grad():  # start on the model's own trajectory: every segment continuous at first
            state = tuple(s.unsqueeze(1) for s in ensemble.initial_state())
            starts = []
            for _ in range(segments - 1):
                _, state = ensemble.rollout(state, times[: interval + 1], **solver)
                starts.append(state)
        self.free = (
            [
                torch.nn.Parameter(torch.cat([st[k] for st in starts], dim=1).detach().clone())
                for k in range(len(ensemble.state_names))
            ]
            if starts
            else []
        )

    def halve(self) -> None:
        """Merge pairs of segments: keep the starts of the even segments (2, 4, ...)."""
        self.free = [torch.nn.Parameter(f.detach()[:, 1::2].clone()) for f in self.free]


def fit_ensemble(
    ensemble: AbstractEnsemble,
    targets: list[FourierTarget],
    config: FitConfig | None = None,
    *,
    epsilon: float = 0.05,
    progress=None,
) -> FitOutcome:
    """Fit member r of `ensemble` to targets[r] (module docstring); the ensemble keeps each member's best
    weights. `progress(step, nmse_best (R,))`, if given, is called after every step (for a progress bar)."""
    config = config or FitConfig()
    if len(targets) != ensemble.size:
        raise ValueError(
            f"fit_ensemble: {len(targets)} targets for an ensemble of {ensemble.size} members; give "
            "one target per member"
        )
    if not (isinstance(epsilon, (int, float)) and math.isfinite(epsilon) and epsilon > 0):
        raise ValueError(f"epsilon must be a positive number, got {epsilon!r}")
    return _Fit(ensemble, targets, config, epsilon, progress).run()


class _Fit:
    """The state of one `fit_ensemble` call: the stacked targets, the optimisers, the best NMSE and weights."""

    def __init__(self, ensemble, targets, config: FitConfig, epsilon: float, progress):
        self.ensemble, self.config, self.epsilon, self.progress = ensemble, config, epsilon, progress
        like = next(iter(ensemble.stacked.values()))
        self.times, self.values, self.lengths, self.variances = _stack_targets(targets, like)
        spf = {round(t.tau_c / float(t.times[1] - t.times[0])) for t in targets}
        self.spf = spf.pop() if len(spf) == 1 else 1  # samples per feature (segments are whole features)
        self.max_features = max(t.features for t in targets)
        self.solver = {"alg": RK4(), "dt": float(self.times[1] - self.times[0]) / config.steps_per_sample}
        self.opt = torch.optim.Adam(ensemble.parameters(), lr=config.lr)
        self.sched = torch.optim.lr_scheduler.CosineAnnealingLR(
            self.opt, T_max=config.steps, eta_min=config.lr * config.lr_min
        )
        R = ensemble.size
        self.best = torch.full((R,), math.inf, dtype=torch.float64)
        self.diverged = torch.zeros(R, dtype=torch.bool)
        self.best_state = ensemble.state()
        self.shooting: _Shooting | None = None
        self.step = 0

    def run(self) -> FitOutcome:
        t0 = time.perf_counter()
        for seg_features, phase_steps in self.config.phases(self.max_features):
            self._phase(seg_features, phase_steps)
        ens = self.ensemble
        ens.copy_rows_(self.best_state, torch.ones(ens.size, dtype=torch.bool))
        with torch.no_grad():
            if isinstance(ens, ODEEnsemble):
                y = ens.trajectories(
                    self.times,
                    alg=Tsit5(),
                    reltol=self.config.check_reltol,
                    abstol=self.config.check_abstol,
                    maxiters=200 * self.times.numel(),
                )
            else:
                y = ens.trajectories(self.times)
            verdict = _row_nmse(y, self.values, self.lengths, self.variances).to(torch.float64)
        verdict = torch.where(torch.isfinite(verdict), verdict, torch.full_like(verdict, math.nan))
        return FitOutcome(
            [float(v) for v in verdict],
            [float(v) for v in self.best],
            [bool(v) for v in self.diverged],
            self.step,
            time.perf_counter() - t0,
            y.detach(),
        )

    def _phase(self, seg_features: int, phase_steps: int) -> None:
        """`phase_steps` steps on segments of `seg_features` features (0: the whole trajectory from h0)."""
        final = seg_features == 0
        S = self.times.numel()
        interval = S - 1 if final else seg_features * self.spf
        segments = math.ceil((S - 1) / interval)
        free, free_opt = [], None
        if not final:
            if self.shooting is None:
                self.shooting = _Shooting(self.ensemble, self.times, interval, segments, self.solver)
            while self.shooting.free and self.shooting.free[0].shape[1] > segments - 1:
                self.shooting.halve()
            free = self.shooting.free
            free_opt = torch.optim.Adam(free, lr=self.config.lr) if free else None
        mask = _segment_mask(self.lengths, segments, interval)
        seg_values = _segment_targets(self.values, segments, interval)
        counts = mask.sum((1, 2)).to(self.values.dtype)
        last_gain = self.step
        for _ in range(phase_steps):
            self.step += 1
            nmse, loss_r = self._losses(free, interval, mask, seg_values, counts)
            bad = ~torch.isfinite(loss_r.detach()) | self.diverged
            self.diverged |= bad
            loss = torch.where(bad, torch.zeros_like(loss_r), loss_r).sum()
            self.opt.zero_grad(set_to_none=True)
            for f in free:
                f.grad = None
            loss.backward()
            _clip_per_member(self.ensemble, free, bad, self.config.grad_clip)
            if final and self._record(nmse.detach().to(torch.float64), bad):
                last_gain = self.step
            self.opt.step()
            if free_opt is not None:
                free_opt.step()
            self.sched.step()
            if self.progress is not None:
                self.progress(self.step, self.best)
            if final and (bool((self.best <= self.epsilon).all()) or self.step - last_gain >= self.config.patience):
                break

    def _losses(self, free, interval, mask, seg_values, counts):
        """(NMSE (R,), NMSE + continuity penalty (R,)) of the current weights on the segments."""
        h0 = tuple(s.unsqueeze(1) for s in self.ensemble.initial_state())
        starts = tuple(torch.cat([a, b], dim=1) for a, b in zip(h0, free)) if free else h0
        y, ends = self.ensemble.rollout(starts, self.times[: interval + 1], **self.solver)
        err = (y - seg_values).pow(2).mean(-1)
        err = torch.where(mask, err, torch.zeros_like(err))  # padding, and what a failed row left there
        nmse = err.sum((1, 2)) / counts / self.variances
        if not free:
            return nmse, nmse
        gap = sum((e[:, :-1] - f).pow(2).mean(-1) for e, f in zip(ends, free))  # (R, J-1)
        linked = mask[:, 1:, 0]  # segment j+1 lies in member r's target
        gap = torch.where(linked, gap, torch.zeros_like(gap))
        return nmse, nmse + self.config.continuity * gap.sum(1) / linked.sum(1).clamp(min=1)

    def _record(self, current: torch.Tensor, bad: torch.Tensor) -> bool:
        """Keep the weights of every member whose whole-trajectory NMSE improved; True when an unfinished member
        improved by at least 1% (progress, for the patience rule)."""
        better = torch.isfinite(current) & (current < self.best) & ~bad
        if not bool(better.any()):
            return False
        gained = bool((better & (current < self.best * 0.99) & (self.best > self.epsilon)).any())
        self.best = torch.where(better, current, self.best)
        snapshot = self.ensemble.state()
        R = self.ensemble.size
        for k in self.best_state:
            rows = better.reshape(R, *([1] * (snapshot[k].ndim - 1)))
            self.best_state[k] = torch.where(rows, snapshot[k], self.best_state[k])
        return gained


def _clip_per_member(ensemble: AbstractEnsemble, extra: list[torch.Tensor], bad: torch.Tensor, clip: float) -> None:
    """Clip each member's gradient (its stacked weights and its rows of `extra`) to norm `clip`; silence the
    members in `bad` and any NaN a blown-up member left in its own rows."""
    R = ensemble.size
    sq = ensemble.member_norms().pow(2)
    for f in extra:
        if f.grad is not None:
            sq = sq + f.grad.detach().pow(2).reshape(R, -1).sum(1)
    norms = sq.sqrt()
    factor = torch.clamp(clip / (norms + 1e-12), max=1.0)
    factor = torch.where(bad | ~torch.isfinite(norms), torch.zeros_like(factor), factor)
    ensemble.scale_grads_(factor)
    for f in extra:
        if f.grad is not None:
            f.grad.mul_(factor.to(f.grad).reshape(R, *([1] * (f.grad.ndim - 1))))
    for p in [*ensemble.parameters(), *extra]:
        if p.grad is not None:
            torch.nan_to_num_(p.grad, nan=0.0, posinf=0.0, neginf=0.0)
