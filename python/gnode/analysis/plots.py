"""Figures: fixed points over trajectories (3-D, or the leading principal components), flow fields with
nullclines on 2-D slices, fixed-point spectra, and stiffness telemetry over time.

Matplotlib is imported inside each function (headless use: call `matplotlib.use("Agg")` first, as the
command line does). Each function draws into a given axes or a new figure and returns the figure.
"""

from __future__ import annotations

import math

import torch

from gnode.analysis.spectra import CLASSES, MARGINAL, SADDLE, STABLE, UNSTABLE
from gnode.analysis.vector_field import FrozenField

CLASS_STYLE = {  # colour, marker, label
    STABLE: ("tab:blue", "o", "stable"),
    MARGINAL: ("tab:green", "D", "marginally stable"),
    SADDLE: ("tab:orange", "X", "saddle"),
    UNSTABLE: ("tab:red", "^", "unstable"),
}


def principal_components(X: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(mean (n,), components (k, n) orthonormal rows, explained variance ratio (k,)) of the rows of X (P, n)."""
    X = X.detach().reshape(-1, X.shape[-1])
    X = X[torch.isfinite(X).all(-1)].double()
    if X.shape[0] < 2:
        raise ValueError("need at least 2 finite states for principal components")
    mean = X.mean(0)
    _, s, vh = torch.linalg.svd(X - mean, full_matrices=False)
    var = s.pow(2)
    k = min(k, vh.shape[0])
    return mean, vh[:k], var[:k] / var.sum().clamp(min=torch.finfo(var.dtype).tiny)


def attractor_basis(fps, trajectories: torch.Tensor | None, dims: int = 3):
    """(origin (n,), basis (d, n), axis labels) for drawing: the coordinates themselves when n <= dims,
    else the leading principal components of the trajectories (or of the points when none are given)."""
    n = fps.points.shape[-1] if fps is not None and len(fps) else trajectories.shape[-1]
    if n <= dims:
        return (
            torch.zeros(n, dtype=torch.float64),
            torch.eye(n, dtype=torch.float64),
            [f"$h_{i + 1}$" for i in range(n)],
        )
    data = trajectories if trajectories is not None else fps.points
    mean, comps, ratio = principal_components(data, dims)
    labels = [f"PC{i + 1} ({100 * float(r):.0f}%)" for i, r in enumerate(ratio)]
    return mean, comps, labels


def _project(X: torch.Tensor, origin: torch.Tensor, basis: torch.Tensor):
    return ((X.detach().double() - origin) @ basis.T).numpy()


def plot_attractor(
    fps,
    trajectories: torch.Tensor | None = None,
    *,
    ax=None,
    max_trajectories: int = 12,
    title: str | None = None,
    show_slow: bool = True,
    segment: float | None = None,
):
    """Fixed points coloured by class, over trajectories (B, T, n): in 3-D for n = 3 (2-D for n = 2), in the
    leading 3 principal components of the trajectories for n > 3. Up to `max_trajectories` are drawn as
    lines, and every visited state as a faint dot. Filled markers are fixed points, hollow
    ones slow points; a short line through each marginally stable point follows its marginal
    eigenvector(s) — the local direction of the (approximate) continuous attractor."""
    import matplotlib.pyplot as plt

    if not len(fps) and trajectories is None:
        raise ValueError("nothing to draw: no fixed or slow points and no trajectories")
    n = fps.points.shape[-1] if len(fps) else trajectories.shape[-1]
    dims = 3 if n >= 3 else 2
    origin, basis, labels = attractor_basis(fps, trajectories, dims)
    if basis.shape[0] < dims:  # n = 1: pad with a zero axis
        basis = torch.cat([basis, torch.zeros(dims - basis.shape[0], n, dtype=basis.dtype)])
        labels = labels + [""]
    if ax is None:
        fig = plt.figure(figsize=(7.5, 6.5))
        ax = fig.add_subplot(111, projection="3d" if dims == 3 else None)
    fig = ax.figure
    extent = 1.0
    if trajectories is not None:
        extent = _draw_trajectories(ax, trajectories, origin, basis, dims, max_trajectories)
    elif len(fps):
        p = _project(fps.points, origin, basis)
        extent = float(p.max(0).max() - p.min(0).min()) or 1.0
    _draw_points(ax, fps, origin, basis, dims, show_slow)
    _draw_marginal_directions(ax, fps, origin, basis, segment if segment is not None else 0.03 * extent)
    ax.set_xlabel(labels[0])
    ax.set_ylabel(labels[1])
    if dims == 3:
        ax.set_zlabel(labels[2])
    ax.set_title(title or f"fixed and slow points ({len(fps)})")
    if len(fps):
        ax.legend(loc="upper left", fontsize=7, framealpha=0.8)
    return fig


def _draw_trajectories(ax, trajectories, origin, basis, dims, max_trajectories) -> float:
    """Up to `max_trajectories` trajectories as lines and every visited state as a faint dot; returns the
    extent of the states in the plot's coordinates."""
    tr = trajectories.detach()
    if tr.ndim == 2:
        tr = tr[None]
    for b in range(min(max_trajectories, tr.shape[0])):
        p = _project(tr[b][torch.isfinite(tr[b]).all(-1)], origin, basis)
        ax.plot(*p.T, color="0.5", lw=0.5, alpha=0.35, zorder=1)
    flat = tr.reshape(-1, tr.shape[-1])
    pts = _project(flat[torch.isfinite(flat).all(-1)], origin, basis)
    if not pts.size:
        return 1.0
    # every visited state, faintly: where the trajectories dwell (between inputs) shows as dense
    step = max(1, pts.shape[0] // 6000)
    ax.scatter(
        *pts[::step].T,
        color="0.6",
        s=0.5,
        alpha=0.25,
        zorder=0,
        label="_states",
        **({"depthshade": False} if dims == 3 else {}),
    )
    return float(pts.max(0).max() - pts.min(0).min()) or 1.0


def _draw_points(ax, fps, origin, basis, dims, show_slow) -> None:
    """Fixed points (filled) and slow points (hollow), coloured by class, with their counts in the legend."""
    for cls in CLASSES:
        colour, marker, label = CLASS_STYLE[cls]
        for fixed in (True, False) if show_slow else (True,):
            m = fps.mask(cls) & (fps.fixed if fixed else ~fps.fixed)
            if not bool(m.any()):
                continue
            p = _project(fps.points[m], origin, basis)
            style = {"marker": marker, "s": 28 if fixed else 22, **({"depthshade": False} if dims == 3 else {})}
            style.update({"color": colour} if fixed else {"facecolors": "none", "edgecolors": colour})
            ax.scatter(*p.T, label=f"{label} ({'fixed' if fixed else 'slow'}): {int(m.sum())}", zorder=3, **style)


def _draw_marginal_directions(ax, fps, origin, basis, seg) -> None:
    """A short line (half-length `seg`) through each marginally stable point along its marginal eigenvectors."""
    for i in fps.mask(MARGINAL).nonzero()[:, 0].tolist():
        lam, vec = fps.eigenvalues[i], fps.eigenvectors[i]
        for j in (lam.real.abs() <= fps.config.marginal_tol).nonzero()[:, 0].tolist():
            v = vec[:, j].real.double()
            if float(v.norm()) == 0:
                continue
            v = v / v.norm()
            a = fps.points[i].double()
            p = _project(torch.stack([a - seg * v, a + seg * v]), origin, basis)
            ax.plot(*p.T, color=CLASS_STYLE[MARGINAL][0], lw=1.2, alpha=0.8, zorder=2)


def plot_state_speed(
    model, trajectories: torch.Tensor, *, x=None, fps=None, ax=None, max_states: int = 6000, title: str | None = None
):
    """Every visited state (trajectories (B, T, n)) coloured by log10 |f(h, x*)|, the speed of the flow with
    the input held at x*, in the same coordinates as `plot_attractor`. An approximate continuous attractor
    shows as a region of slow states where the trajectories dwell; fixed points (black) sit inside it."""
    import matplotlib.pyplot as plt
    import numpy as np

    field = model if isinstance(model, FrozenField) else FrozenField(model, x, dtype=torch.float64)
    tr = trajectories.detach()
    tr = tr[None] if tr.ndim == 2 else tr
    n = tr.shape[-1]
    flat = tr.reshape(-1, n)
    flat = flat[torch.isfinite(flat).all(-1)]
    flat = flat[:: max(1, flat.shape[0] // max_states)].to(field.dtype)
    with torch.no_grad():
        speed = field(flat).norm(dim=-1).numpy()
    dims = 3 if n >= 3 else 2
    origin, basis, labels = attractor_basis(fps, tr, dims)
    if basis.shape[0] < dims:
        basis = torch.cat([basis, torch.zeros(dims - basis.shape[0], n, dtype=basis.dtype)])
        labels = labels + [""]
    if ax is None:
        fig = plt.figure(figsize=(7.5, 6.5))
        ax = fig.add_subplot(111, projection="3d" if dims == 3 else None)
    fig = ax.figure
    p = _project(flat, origin, basis)
    colour = np.log10(np.maximum(speed, np.finfo(np.float64).tiny))
    sc = ax.scatter(*p.T, c=colour, cmap="viridis", s=3, alpha=0.8, **({"depthshade": False} if dims == 3 else {}))
    fig.colorbar(sc, ax=ax, shrink=0.7, label=r"$\log_{10}|f(h, x^*)|$")
    if fps is not None and len(fps):
        q = _project(fps.points[fps.fixed], origin, basis)
        if q.size:
            ax.scatter(*q.T, color="k", marker="D", s=14, label=f"fixed points: {q.shape[0]}")
            ax.legend(loc="upper left", fontsize=7)
    ax.set_xlabel(labels[0])
    ax.set_ylabel(labels[1])
    if dims == 3:
        ax.set_zlabel(labels[2])
    ax.set_title(title or "visited states coloured by the speed of the flow at x*")
    return fig


def plot_flow_slice(
    model,
    *,
    x=None,
    center: torch.Tensor,
    basis: torch.Tensor,
    extent: tuple[float, float, float, float],
    grid: int = 41,
    fps=None,
    trajectories: torch.Tensor | None = None,
    ax=None,
    labels: tuple[str, str] = ("$e_1$", "$e_2$"),
    title: str | None = None,
    near: float | None = None,
):
    """The flow on the 2-D slice h = center + a e1 + b e2 (basis (2, n), orthonormal rows), a, b in `extent`
    = (a_min, a_max, b_min, b_max).

    Background: log10 |f(h, x*)| (the full speed, so slow regions — the attractor — show dark); streamlines:
    the in-plane components (e1 . f, e2 . f); nullclines: the curves where e1 . f = 0 (solid) and e2 . f = 0
    (dashed) on the slice. For n = 2 with the identity basis these are the classical nullclines; for n > 2
    they are those of the in-plane components, and a fixed point lies on both only if it lies in the slice.
    Fixed points within `near` of the slice plane (default: 5% of the slice's width) are drawn on it. The
    streamlines thin out with a grid coarser than the default 41 (their integration is most of the cost).
    """
    import matplotlib.pyplot as plt
    import numpy as np

    field = model if isinstance(model, FrozenField) else FrozenField(model, x, dtype=torch.float64)
    basis = basis.to(field.dtype)
    center = center.to(field.dtype)
    if basis.ndim != 2 or basis.shape[0] != 2:
        raise ValueError(f"basis must be (2, n), got shape {tuple(basis.shape)}")
    gram = basis @ basis.T
    if not torch.allclose(gram, torch.eye(2, dtype=gram.dtype), atol=1e-6):
        raise ValueError("basis rows must be orthonormal (use principal components or coordinate axes)")
    a = torch.linspace(extent[0], extent[1], grid, dtype=field.dtype)
    b = torch.linspace(extent[2], extent[3], grid, dtype=field.dtype)
    A, Bm = torch.meshgrid(a, b, indexing="xy")
    H = center + A.reshape(-1, 1) * basis[0] + Bm.reshape(-1, 1) * basis[1]
    with torch.no_grad():
        F = field(H)
    U = (F @ basis[0]).reshape(grid, grid).numpy()
    V = (F @ basis[1]).reshape(grid, grid).numpy()
    speed = F.norm(dim=-1).reshape(grid, grid).numpy()
    if ax is None:
        fig, ax = plt.subplots(figsize=(6, 5.2), layout="constrained")
    fig = ax.figure
    tiny = np.finfo(np.float64).tiny
    mesh = ax.pcolormesh(A.numpy(), Bm.numpy(), np.log10(np.maximum(speed, tiny)), shading="auto", cmap="viridis")
    fig.colorbar(mesh, ax=ax, label=r"$\log_{10}|f(h, x^*)|$")
    ax.streamplot(
        a.numpy(),
        b.numpy(),
        U,
        V,
        color="white",
        density=1.1 * min(1.0, max(grid / 41, 0.25)),
        linewidth=0.6,
        arrowsize=0.7,
    )
    for comp, style, name in ((U, "solid", "e1-nullcline"), (V, "dashed", "e2-nullcline")):
        if comp.min() < 0 < comp.max():
            ax.contour(A.numpy(), Bm.numpy(), comp, levels=[0.0], colors="k", linestyles=style, linewidths=1.0)
    ax.plot([], [], "k-", lw=1, label=r"$e_1\cdot f = 0$")
    ax.plot([], [], "k--", lw=1, label=r"$e_2\cdot f = 0$")
    if trajectories is not None:
        tr = trajectories.detach().to(field.dtype)
        tr = tr[None] if tr.ndim == 2 else tr
        for traj in tr[:20]:
            p = ((traj - center) @ basis.T).numpy()
            ax.plot(p[:, 0], p[:, 1], color="0.85", lw=0.5, alpha=0.6)
    if fps is not None and len(fps):
        width = max(extent[1] - extent[0], extent[3] - extent[2])
        near = 0.05 * width if near is None else near
        rel = fps.points.to(field.dtype) - center
        inplane = rel @ basis.T
        off = (rel - inplane @ basis).norm(dim=-1)
        for cls in CLASSES:
            m = fps.mask(cls) & (off <= near)
            if bool(m.any()):
                colour, marker, label = CLASS_STYLE[cls]
                p = inplane[m].numpy()
                ax.scatter(
                    p[:, 0],
                    p[:, 1],
                    color=colour,
                    marker=marker,
                    s=30,
                    edgecolors="k",
                    linewidths=0.4,
                    label=f"{label} (fixed or slow, near the slice): {int(m.sum())}",
                    zorder=4,
                )
    ax.set_xlim(extent[0], extent[1])
    ax.set_ylim(extent[2], extent[3])
    ax.set_xlabel(labels[0])
    ax.set_ylabel(labels[1])
    ax.set_title(title or "flow on a slice")
    ax.legend(loc="lower right", fontsize=7, framealpha=0.8)
    return fig


def plot_spectra(fps, *, ax=None, title: str | None = None):
    """The Jacobian eigenvalues of every fixed/slow point in the complex plane, coloured by the point's class,
    with the band |Re lambda| <= marginal_tol shaded."""
    import matplotlib.pyplot as plt

    if ax is None:  # constrained: long tick labels (-0.010) would push the "Im lambda" label off the canvas
        fig, ax = plt.subplots(figsize=(6, 4.5), layout="constrained")
    fig = ax.figure
    tol = fps.config.marginal_tol
    ax.axvspan(-tol, tol, color="tab:green", alpha=0.15, label=f"|Re| <= {tol:g}")
    ax.axvline(0, color="k", lw=0.6)
    for cls in CLASSES:
        m = fps.mask(cls)
        if bool(m.any()):
            colour, marker, label = CLASS_STYLE[cls]
            lam = fps.eigenvalues[m].reshape(-1)
            ax.scatter(lam.real.numpy(), lam.imag.numpy(), color=colour, marker=marker, s=14, alpha=0.7, label=label)
    ax.set_xlabel(r"Re $\lambda$")
    ax.set_ylabel(r"Im $\lambda$")
    ax.set_title(title or "Jacobian eigenvalues at the fixed and slow points")
    ax.legend(fontsize=7)
    return fig


def plot_telemetry(tel, *, max_trajectories: int = 20, title: str | None = None):
    """Four panels over time for up to `max_trajectories` trajectories: dt*rho(J)/bound (with 1 marked),
    rho(J), the gate timescales' min and max, and the stiffness ratio (log scale, with its caveat)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 7), sharex=True)
    B = tel.t.shape[0]
    colours = plt.cm.viridis([i / max(1, min(B, max_trajectories) - 1) for i in range(min(B, max_trajectories))])

    def lines(ax, y, **kw):
        for b in range(min(B, max_trajectories)):
            m = tel.valid[b] & torch.isfinite(y[b])
            ax.plot(tel.t[b][m].numpy(), y[b][m].numpy(), color=colours[b], lw=0.8, alpha=0.8, **kw)

    ax = axes[0, 0]
    if math.isfinite(tel.bound):
        lines(ax, tel.ratio)
        ax.axhline(1.0, color="tab:red", lw=1, ls="--", label="stability bound")
        ax.set_ylabel(r"$|dt|\,\rho(J)$ / bound")
        ax.set_title(f"{tel.alg}: step against its real-axis stability bound {tel.bound:.4g}", fontsize=9)
        ax.legend(fontsize=7)
    else:
        lines(ax, tel.dt_rho)
        ax.set_ylabel(r"$|dt|\,\rho(J)$")
        ax.set_title(f"{tel.alg}: L-stable (no stability bound)", fontsize=9)
    ax = axes[0, 1]
    lines(ax, tel.rho)
    ax.set_ylabel(r"$\rho(J)$")
    ax.set_title(f"spectral radius of the Jacobian ({tel.method})", fontsize=9)
    ax = axes[1, 0]
    if tel.tau_min is not None:
        lines(ax, tel.tau_min)
        lines(ax, tel.tau_max, ls="--")
        ax.set_yscale("log")
        ax.set_ylabel(r"$\tau / G_i$: min (solid), max (dashed)")
        ax.set_title("gate timescales", fontsize=9)
    else:
        ax.text(
            0.5, 0.5, "ungated model: every unit has timescale tau", ha="center", va="center", transform=ax.transAxes
        )
    ax.set_xlabel("t")
    ax = axes[1, 1]
    if tel.stiffness_ratio is not None:
        lines(ax, tel.stiffness_ratio)
        ax.set_yscale("log")
        ax.set_ylabel(r"max|Re $\lambda$| / min|Re $\lambda$|  (Re $\lambda$ < 0)")
        ax.set_title("classical stiffness ratio (huge near marginal directions: not a cost)", fontsize=9)
    else:
        ax.text(0.5, 0.5, "stiffness ratio needs exact eigenvalues", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("t")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
