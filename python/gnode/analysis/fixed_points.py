"""Fixed and slow points of dh/dt = f(h, x*) by Sussillo & Barak's method, batched.

Sussillo & Barak, "Opening the black box: low-dimensional dynamics in high-dimensional recurrent neural
networks", Neural Computation 25(3), 2013: minimise the kinetic energy

    q(h) = 1/2 |f(h, x*)|^2

from many initial states sampled along the network's own trajectories. Minima with q = 0 are fixed
points; minima with small q > 0 are slow points (ghosts, the nearly-flat stretches of an approximate
continuous attractor). Here

  1. every initial state descends q at once (Adam on sum_p q(h_p): the rows do not interact, so each row
     follows its own gradient J^T f), with a learning rate that decays geometrically;
  2. Newton polish: damped Gauss–Newton (Levenberg–Marquardt) steps (J^T J + mu I) delta = -J^T f with the
     model's Jacobian, mu shrinking on success and growing on failure, per point. With mu -> 0 this is
     Newton's step J delta = -f (quadratic convergence at a regular root); at a singular J (a continuum
     of fixed points: a ring, a line) it tends to the minimum-norm step onto the continuum;
  3. candidates with q above `slow_tol` are dropped, and so are outliers far from every initial state;
     the rest are deduplicated greedily in order of increasing q (a point within `dedup_tol` of a kept
     one is dropped, and counted with it);
  4. each point is classified by the eigenvalues of its Jacobian (`gnode.analysis.spectra.classify`):
     stable, marginally stable (real parts within `marginal_tol` of 0; the number of marginal directions is
     reported), saddle, unstable.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch

from gnode.analysis.spectra import CLASSES, MARGINAL, classify, count_directions
from gnode.analysis.vector_field import FrozenField


@dataclass(frozen=True)
class FixedPointConfig:
    """Settings of `find_fixed_points`.

    opt_steps:     Adam iterations on q (0: Newton polish only).
    lr, lr_final:  Adam's learning rate, decaying geometrically from lr to lr_final over opt_steps (state units).
    newton_steps:  Levenberg–Marquardt iterations after Adam.
    max_step:      the largest Newton step (state units); longer steps are shortened to it.
    fixed_tol:     q <= fixed_tol is a fixed point (q = |f|^2 / 2; 1e-12 means |f| <= 1.4e-6).
    slow_tol:      fixed_tol < q <= slow_tol is a slow point; candidates with larger q are dropped
                   (None: keep every candidate).
    dedup_tol:     two points closer than this (Euclidean, state units) are the same point.
    outlier_scale: drop candidates farther from every initial state than outlier_scale times the initial
                   states' RMS distance from their mean (None: keep all). Newton along a nearly flat
                   direction, or into a region where a gate has closed (G ~ 0 makes f ~ 0 anywhere), can
                   land far from where the network ever goes; such points say nothing about its computation
                   (Golub & Sussillo's FixedPointFinder, JOSS 2018, drops them the same way).
    marginal_tol:  |Re lambda| <= marginal_tol is a marginal direction (1 / time units).
    dtype:         the dtype of the search (the model is copied and cast); float64 by default, so that Newton
                   can reach q ~ 1e-25 even for a float32 model.
    """

    opt_steps: int = 400
    lr: float = 1e-2
    lr_final: float = 1e-4
    newton_steps: int = 30
    max_step: float = 0.5
    fixed_tol: float = 1e-12
    slow_tol: float | None = 1e-6
    dedup_tol: float = 1e-3
    outlier_scale: float | None = 1.0
    marginal_tol: float = 1e-3
    dtype: torch.dtype | None = torch.float64

    def __post_init__(self):
        def need(ok, what):
            if not ok:
                raise ValueError(f"FixedPointConfig: {what}")

        for name in ("opt_steps", "newton_steps"):
            v = getattr(self, name)
            need(
                isinstance(v, int) and not isinstance(v, bool) and v >= 0, f"{name} must be an integer >= 0, got {v!r}"
            )
        for name in ("lr", "lr_final", "max_step", "fixed_tol", "dedup_tol"):
            v = getattr(self, name)
            need(
                isinstance(v, (int, float)) and math.isfinite(v) and v > 0,
                f"{name} must be a positive number, got {v!r}",
            )
        need(
            isinstance(self.marginal_tol, (int, float)) and self.marginal_tol >= 0,
            f"marginal_tol must be a number >= 0, got {self.marginal_tol!r}",
        )
        need(
            self.slow_tol is None or (isinstance(self.slow_tol, (int, float)) and self.slow_tol >= self.fixed_tol),
            f"slow_tol must be None or a number >= fixed_tol = {self.fixed_tol}, got {self.slow_tol!r}",
        )
        need(
            self.outlier_scale is None or (isinstance(self.outlier_scale, (int, float)) and self.outlier_scale > 0),
            f"outlier_scale must be None or a positive number, got {self.outlier_scale!r}",
        )
        need(self.opt_steps + self.newton_steps > 0, "opt_steps and newton_steps cannot both be 0")


@dataclass
class FixedPoints:
    """The unique fixed and slow points found, sorted by increasing q. K points of dimension n:

    points (K, n); q (K,) the kinetic energy |f|^2 / 2; speed (K,) = |f|; fixed (K,) bool (q <= fixed_tol,
    else a slow point); eigenvalues (K, n) complex, by decreasing real part; eigenvectors (K, n, n) (column i
    belongs to eigenvalue i); classes: a class name per point (`gnode.analysis.spectra.CLASSES`);
    n_marginal, n_unstable (K,): directions with |Re| <= marginal_tol and Re > marginal_tol;
    count (K,): how many candidates converged onto each point; x (the input x*) and the config used.
    """

    points: torch.Tensor
    q: torch.Tensor
    speed: torch.Tensor
    fixed: torch.Tensor
    eigenvalues: torch.Tensor
    eigenvectors: torch.Tensor
    classes: list[str]
    n_marginal: torch.Tensor
    n_unstable: torch.Tensor
    count: torch.Tensor
    x: torch.Tensor | None
    config: FixedPointConfig
    n_candidates: int = 0
    n_dropped: int = 0  # candidates whose q stayed above slow_tol
    n_outliers: int = 0  # candidates dropped as too far from every initial state
    candidates: torch.Tensor | None = field(default=None, repr=False)  # every polished candidate (C, n)
    candidate_q: torch.Tensor | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return self.points.shape[0]

    def mask(self, cls: str, *, fixed_only: bool = False) -> torch.Tensor:
        """Boolean (K,) of the points of class `cls` (and fixed, not slow, if `fixed_only`)."""
        if cls not in CLASSES:
            raise ValueError(f"unknown class {cls!r}; the classes are {CLASSES}")
        m = torch.tensor([c == cls for c in self.classes], dtype=torch.bool, device=self.points.device)
        return m & self.fixed if fixed_only else m

    def counts(self) -> dict:
        """Numbers of fixed and of slow points per class."""
        out = {"fixed": {}, "slow": {}}
        for c in CLASSES:
            m = self.mask(c)
            out["fixed"][c] = int((m & self.fixed).sum())
            out["slow"][c] = int((m & ~self.fixed).sum())
        return out

    def summary(self) -> dict:
        """Plain data for a JSON report: counts and tolerances."""
        cfg = {k: (str(v) if isinstance(v, torch.dtype) else v) for k, v in asdict(self.config).items()}
        return {
            "n_points": len(self),
            "n_fixed": int(self.fixed.sum()),
            "n_slow": int((~self.fixed).sum()),
            "n_marginally_stable_fixed": int(self.mask(MARGINAL, fixed_only=True).sum()),
            "counts": self.counts(),
            "n_candidates": self.n_candidates,
            "n_dropped": self.n_dropped,
            "n_outliers": self.n_outliers,
            "input": None if self.x is None else self.x.tolist(),
            "config": cfg,
        }

    def records(self) -> list[dict]:
        """One dict per point (state, q, class, eigenvalues as [re, im] pairs, ...) for JSON."""
        out = []
        for i in range(len(self)):
            lam = self.eigenvalues[i]
            out.append(
                {
                    "point": self.points[i].tolist(),
                    "q": float(self.q[i]),
                    "speed": float(self.speed[i]),
                    "fixed": bool(self.fixed[i]),
                    "class": self.classes[i],
                    "n_marginal": int(self.n_marginal[i]),
                    "n_unstable": int(self.n_unstable[i]),
                    "count": int(self.count[i]),
                    "eigenvalues": [[float(v.real), float(v.imag)] for v in lam],
                }
            )
        return out


def sample_states(
    trajectories: torch.Tensor, count: int, *, noise: float = 0.0, generator: torch.Generator | None = None
) -> torch.Tensor:
    """`count` initial states drawn uniformly from the states visited along `trajectories` ((B, T, n) or
    (P, n)), plus Gaussian noise of standard deviation noise * (the states' RMS spread about their mean).

    Sampling where the network actually goes is Sussillo & Barak's recipe: the fixed points that organise
    the computation lie near its trajectories. Non-finite states (a failed solve) are left out.
    """
    if not isinstance(trajectories, torch.Tensor) or trajectories.ndim not in (2, 3):
        raise ValueError(
            "trajectories must be a tensor (batch, time, n) or (points, n), got "
            f"{getattr(trajectories, 'shape', type(trajectories).__name__)}"
        )
    if not isinstance(count, int) or count < 1:
        raise ValueError(f"count must be a positive integer, got {count!r}")
    if not (isinstance(noise, (int, float)) and noise >= 0):
        raise ValueError(f"noise must be a number >= 0, got {noise!r}")
    states = trajectories.detach().reshape(-1, trajectories.shape[-1])
    states = states[torch.isfinite(states).all(-1)]
    if states.shape[0] == 0:
        raise ValueError("trajectories hold no finite state to start from")
    idx = torch.randint(0, states.shape[0], (count,), generator=generator)
    out = states[idx.to(states.device)].clone()
    if noise > 0:
        spread = (states - states.mean(0)).pow(2).sum(-1).mean().sqrt()
        eps = torch.randn(out.shape, generator=generator, dtype=out.dtype).to(out.device)
        out = out + noise * spread * eps / math.sqrt(out.shape[-1])
    return out


def kinetic_energy(field: FrozenField, h: torch.Tensor) -> torch.Tensor:
    """q(h) = |f(h, x*)|^2 / 2 (P,)."""
    return 0.5 * field(h).pow(2).sum(-1)


def minimise_q(field: FrozenField, h0: torch.Tensor, config: FixedPointConfig) -> torch.Tensor:
    """Adam on sum_p q(h_p) (phase 1 of the module docstring); returns the final states (detached)."""
    # Adam written out (Kingma & Ba 2015, beta1 = 0.9, beta2 = 0.999, eps = 1e-8): torch.optim's first call
    # imports torch._dynamo, seconds of start-up that this small loop does not need
    h = h0.detach().clone()
    if config.opt_steps == 0:
        return h
    b1, b2, eps = 0.9, 0.999, 1e-8
    m, v = torch.zeros_like(h), torch.zeros_like(h)
    decay = (config.lr_final / config.lr) ** (1.0 / max(config.opt_steps - 1, 1))
    lr = config.lr
    for k in range(1, config.opt_steps + 1):
        with torch.enable_grad():
            hh = h.requires_grad_(True)
            (g,) = torch.autograd.grad(kinetic_energy(field, hh).sum(), hh)
        h = h.detach()
        g = torch.nan_to_num(g, nan=0.0, posinf=0.0, neginf=0.0)
        m.mul_(b1).add_(g, alpha=1 - b1)
        v.mul_(b2).addcmul_(g, g, value=1 - b2)
        step = lr * (m / (1 - b1**k)) / ((v / (1 - b2**k)).sqrt() + eps)
        h = h - step
        lr *= decay
    return h


def newton_polish(field: FrozenField, h: torch.Tensor, config: FixedPointConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Levenberg–Marquardt-damped Newton steps (phase 2), per point; returns (states, q)."""
    h = h.detach().clone()
    with torch.no_grad():
        f = field(h)
        q = 0.5 * f.pow(2).sum(-1)
        n = h.shape[-1]
        eye = torch.eye(n, dtype=h.dtype, device=h.device)
        mu = torch.full_like(q, 1e-6)
        for _ in range(config.newton_steps):
            J = field.jacobian(h)
            JT = J.transpose(-1, -2)
            JTJ = JT @ J
            scale = JTJ.diagonal(dim1=-2, dim2=-1).mean(-1).clamp(min=torch.finfo(h.dtype).tiny)
            A = JTJ + (mu * scale)[:, None, None] * eye
            g = (JT @ f[..., None])[..., 0]
            delta = -torch.linalg.solve(A, g[..., None])[..., 0]
            norm = delta.norm(dim=-1, keepdim=True)
            delta = torch.where(norm > config.max_step, delta * (config.max_step / norm), delta)
            delta = torch.nan_to_num(delta, nan=0.0, posinf=0.0, neginf=0.0)
            h_new = h + delta
            f_new = field(h_new)
            q_new = 0.5 * f_new.pow(2).sum(-1)
            ok = torch.isfinite(q_new) & (q_new < q)
            h = torch.where(ok[:, None], h_new, h)
            f = torch.where(ok[:, None], f_new, f)
            q = torch.where(ok, q_new, q)
            mu = torch.where(ok, mu / 10, mu * 10).clamp(1e-12, 1e12)
    return h, q


def deduplicate(points: torch.Tensor, q: torch.Tensor, tol: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Greedy clustering in order of increasing q: returns (indices of the kept points, count per kept point)."""
    order = torch.argsort(q)
    pts = points[order]
    dist = torch.cdist(pts, pts)
    covered = torch.zeros(pts.shape[0], dtype=torch.bool, device=pts.device)
    kept, counts = [], []
    for i in range(pts.shape[0]):
        if covered[i]:
            continue
        near = (dist[i] < tol) & ~covered
        covered |= near
        kept.append(int(order[i]))
        counts.append(int(near.sum()))
    return (
        torch.tensor(kept, dtype=torch.long, device=points.device),
        torch.tensor(counts, dtype=torch.long, device=points.device),
    )


def analyse_points(field: FrozenField, points: torch.Tensor, marginal_tol: float):
    """Jacobian eigen-decomposition and class of each point: (eigenvalues, eigenvectors, classes, n_marginal,
    n_unstable), eigenvalues sorted by decreasing real part with their eigenvectors alongside."""
    with torch.no_grad():
        J = field.jacobian(points)
    lam, vec = torch.linalg.eig(J)
    # sort (eigenvalue, eigenvector) pairs by decreasing real part, then imaginary part
    order = torch.argsort(-lam.imag, dim=-1, stable=True)
    lam, vec = torch.gather(lam, -1, order), torch.gather(vec, -1, order[:, None, :].expand_as(vec))
    order = torch.argsort(-lam.real, dim=-1, stable=True)
    lam, vec = torch.gather(lam, -1, order), torch.gather(vec, -1, order[:, None, :].expand_as(vec))
    up, marg, _ = count_directions(lam, marginal_tol)
    return lam, vec, classify(lam, marginal_tol), marg, up


def find_fixed_points(
    model, initial_states: torch.Tensor, x=None, *, config: FixedPointConfig | None = None
) -> FixedPoints:
    """Fixed and slow points of dh/dt = f(h, x*) found from `initial_states` (P, n) (module docstring).

    model:          a gnODE-family vector field, a `SequenceModel`, or a row-wise callable f(t, h[, x]).
    initial_states: where the searches start, e.g. `sample_states(trajectories, 1000, noise=0.05)`.
    x:              the constant input x* ((d_in,) or None for zero / no input).
    config:         `FixedPointConfig` (tolerances, iterations, dtype).
    """
    config = config or FixedPointConfig()
    field_ = model if isinstance(model, FrozenField) else FrozenField(model, x, dtype=config.dtype)
    h0 = field_.check_states(initial_states, "initial_states")
    if not torch.isfinite(h0).all():
        bad = int((~torch.isfinite(h0).all(-1)).nonzero()[0])
        raise ValueError(f"initial_states[{bad}] is not finite; drop non-finite states (sample_states does)")
    h = minimise_q(field_, h0, config)
    h, q = newton_polish(field_, h, config)
    finite = torch.isfinite(q) & torch.isfinite(h).all(-1)
    keep = finite if config.slow_tol is None else finite & (q <= config.slow_tol)
    n_dropped = int((~keep).sum())
    n_outliers = 0
    spread = (h0 - h0.mean(0)).pow(2).sum(-1).mean().sqrt()
    if config.outlier_scale is not None and float(spread) > 0:  # one start (or identical ones): no scale, keep all
        near = torch.cdist(torch.nan_to_num(h), h0).amin(-1) <= config.outlier_scale * spread
        n_outliers = int((keep & ~near).sum())
        keep = keep & near
    pts, qs = h[keep], q[keep]
    if pts.shape[0]:
        idx, count = deduplicate(pts, qs, config.dedup_tol)
        pts, qs = pts[idx], qs[idx]
    else:
        count = torch.zeros(0, dtype=torch.long, device=h.device)
    n = h.shape[-1]
    if pts.shape[0]:
        lam, vec, classes, marg, up = analyse_points(field_, pts, config.marginal_tol)
    else:
        lam = torch.zeros(0, n, dtype=torch.complex128 if h.dtype == torch.float64 else torch.complex64)
        vec = torch.zeros(0, n, n, dtype=lam.dtype)
        classes, marg, up = [], torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long)
    return FixedPoints(
        points=pts,
        q=qs,
        speed=(2 * qs).sqrt(),
        fixed=qs <= config.fixed_tol,
        eigenvalues=lam,
        eigenvectors=vec,
        classes=classes,
        n_marginal=marg,
        n_unstable=up,
        count=count,
        x=field_.x,
        config=config,
        n_candidates=h0.shape[0],
        n_dropped=n_dropped,
        n_outliers=n_outliers,
        candidates=h,
        candidate_q=q,
    )


__all__ = [
    "FixedPointConfig",
    "FixedPoints",
    "analyse_points",
    "deduplicate",
    "find_fixed_points",
    "kinetic_energy",
    "minimise_q",
    "newton_polish",
    "sample_states",
]
