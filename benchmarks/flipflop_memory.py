"""How well does a trained flip-flop model hold a memory, everywhere in the memory cube?

For every point m of a grid over the cube [-0.9, 0.9]^3 (5 values per channel, 125 memories), the model is
driven with three one-sample pulses that write m_1, m_2, m_3 on channels 1, 2, 3 (samples 0, 1, 2) and then
left without input for `--hold` time units (default 40: twice the training sequences' length). Measured per
memory, on the model's outputs y (what the task scores):

    write error   |y(t_w) - m|, with t_w the first sample after the last pulse (t = 3)
    drift speed   |y(t_w + hold) - y(t_w)| / hold  (output units per time unit, averaged over the hold)
    hold error    |y(t_w + hold) - m|
    latent speed  the median over the hold of |dh/dt| = |f(h, 0)| (the flow along the memory)

A model whose slow manifold fills the cube has small drift everywhere; one that stores memories at a few
marginal points drifts towards them from elsewhere. The run folders are solved with their own saved solver,
and again with Tsit5 at reltol 1e-8 in float64 (`--reference`), so the numbers belong to the ODE, not to the
step. Writes JSON and a figure per run, and a comparison table when several runs are given:

    python benchmarks/flipflop_memory.py experiments/flipflop-3d experiments/flipflop-3d-recipe \
        --out benchmarks/results/flipflop_memory
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import torch


def memory_grid(points: int = 5, scale: float = 0.9) -> torch.Tensor:
    """(points^3, 3) memories on a grid over [-scale, scale]^3."""
    axis = torch.linspace(-scale, scale, points, dtype=torch.float64)
    return torch.cartesian_prod(axis, axis, axis)


def probe(folder: Path, memories: torch.Tensor, hold: float, reference: bool) -> dict:
    """Drive the run's model with write-then-hold sequences (module docstring); per-memory measures."""
    from gnode.training.experiment import SolverConfig, load_run

    solver = SolverConfig(alg="Tsit5()", reltol=1e-8, abstol=1e-10) if reference else None
    run = load_run(folder, solver=solver, dtype="float64" if reference else None, gradients=False)
    model = run.model.eval()
    dt = run.config.task.dt
    width = max(1, round(run.config.task.pulse_width / dt))
    writes = 3 * width
    steps = writes + round(hold / dt) + 1
    like = next(model.parameters())
    x = torch.zeros(memories.shape[0], steps, 3, dtype=like.dtype)
    for ch in range(3):
        x[:, ch * width : (ch + 1) * width, ch] = memories[:, ch, None].to(like.dtype)
    times = torch.arange(steps, dtype=like.dtype) * dt
    with torch.no_grad():
        out = model(x, times)
        y, h = out.y.double(), out.h
        f = model.vector_field if hasattr(model, "vector_field") else None
        held = h[:, writes:]
        speed = (
            f(times[writes:], held.reshape(-1, held.shape[-1])).reshape(held.shape).norm(dim=-1).median(1).values
            if f is not None
            else torch.full((memories.shape[0],), float("nan"))
        )
    m = memories.double()
    span = float(times[-1] - times[writes])
    return {
        "write_error": (y[:, writes] - m).norm(dim=-1).tolist(),
        "drift_speed": ((y[:, -1] - y[:, writes]).norm(dim=-1) / span).tolist(),
        "hold_error": (y[:, -1] - m).norm(dim=-1).tolist(),
        "latent_speed": speed.double().tolist(),
        "solver": "Tsit5 reltol 1e-8, float64" if reference else f"{run.config.solver.alg} (as trained)",
        "test_nmse": run.summary.get("normalized_test_mse"),
    }


def summarise(r: dict) -> dict:
    out = {}
    for k in ("write_error", "drift_speed", "hold_error", "latent_speed"):
        v = sorted(r[k])
        out[k] = {"median": statistics.median(v), "p90": v[int(0.9 * (len(v) - 1))], "max": v[-1]}
    return out


def figure(name: str, memories: torch.Tensor, r: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(11, 4.4))
    for i, (key, label) in enumerate(
        (("drift_speed", "output drift speed |dy/dt|"), ("hold_error", "error after the hold |y - m|"))
    ):
        ax = fig.add_subplot(1, 2, i + 1, projection="3d")
        sc = ax.scatter(*memories.T.numpy(), c=r[key], cmap="viridis", s=30, vmin=0)
        ax.set_xlabel("m1")
        ax.set_ylabel("m2")
        ax.set_zlabel("m3")
        ax.set_title(label, fontsize=9)
        fig.colorbar(sc, ax=ax, shrink=0.6, pad=0.12)
    fig.suptitle(f"{name}: memories written at 125 points of the cube, then held", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__
    )
    p.add_argument("runs", nargs="+", type=Path, help="flip-flop run folders (3 channels)")
    p.add_argument("--hold", type=float, default=40.0, help="time without input after the writes (default 40)")
    p.add_argument("--points", type=int, default=5, help="grid values per channel (default 5)")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/flipflop_memory"))
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    memories = memory_grid(args.points)
    args.out.mkdir(parents=True, exist_ok=True)
    results = {}
    for folder in args.runs:
        if not (folder / "config.json").exists():
            print(f"flipflop_memory: {folder} is not a run folder (no config.json)", file=sys.stderr)
            return 2
        for reference in (False, True):
            r = probe(folder, memories, args.hold, reference)
            key = f"{folder.name}{' (reference solve)' if reference else ''}"
            results[key] = {"run": str(folder), **r, "summary": summarise(r)}
            if not reference:
                figure(folder.name, memories, r, args.out / f"{folder.name}.png")
    (args.out / "memory.json").write_text(
        json.dumps({"hold": args.hold, "memories": memories.tolist(), "runs": results}, indent=1)
    )
    head = f"{'run':<42}{'test NMSE':>10}{'write err':>11}{'drift speed':>13}{'p90':>9}{'hold err':>10}{'p90':>9}"
    lines = [head, "-" * len(head)]
    for key, r in results.items():
        s = r["summary"]
        nmse = f"{r['test_nmse']:.3f}" if r["test_nmse"] is not None else "-"
        lines.append(
            f"{key:<42}{nmse:>10}{s['write_error']['median']:>11.3f}{s['drift_speed']['median']:>13.4f}"
            f"{s['drift_speed']['p90']:>9.4f}{s['hold_error']['median']:>10.3f}{s['hold_error']['p90']:>9.3f}"
        )
    lines.append(
        f"\n(medians over {memories.shape[0]} memories; hold {args.hold:g} time units; errors are Euclidean "
        "norms over the 3 channels)"
    )
    text = "\n".join(lines)
    (args.out / "memory.txt").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
