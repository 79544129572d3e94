"""Native engine vs torchdiffeq, torchode and diffrax on one random gnODE batch, forward and with gradients.

    python benchmarks/gnode_batch.py            # batch 64, n 32, hidden 64, float64, t in [0, 20]
    python benchmarks/gnode_batch.py --quick    # fewer tolerances and repeats

A thin front end to `gnode.bench` (the same runner as `gnode bench`), on the problem of the design's
performance target: tau dh/dt = G ⊙ (-h + F), F = tanh(W2 relu(W1 h + b1) + b2), G = sigmoid(V2 relu(V1 h + c1)
+ c2), weights N(0, 1.5^2 / fan_in), biases N(0, 0.01), seed 0; u0 ~ N(0, 1), seed 1; saved at 21 times.
Every solver integrates the same vector field, with the same weights, from the same states, at the same
tolerances (abstol = reltol / 100). Errors are the max abs error over the saved times against SciPy DOP853 at
rtol 1e-13 (cached); gradient points use the relative error of dL/dθ against the reference gradient. Times are
the minimum over repeats after a warm-up, torch on one thread, JAX on one thread after compilation (its compile
time is recorded apart). `overhead` = time / (batched f calls × the time of one bare f call) - 1.

Writes benchmarks/results/gnode_batch.json (the `gnode bench` results format) and figures beside it
(benchmarks/results/gnode_batch/), and prints the points and the ratios at matched error.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import tempfile
from pathlib import Path

import torch

import gnode
from gnode.bench import BenchConfig, ProblemSpec, SolverSpec, Trial, format_comparisons, run_set
from gnode.bench.gnode_problems import gnode_problem

N, HIDDEN, BATCH, T_END = 32, 64, 64, 20.0
F64 = torch.float64


def random_gnode(n=N, hidden=HIDDEN, batch=BATCH, t1=T_END, gain=1.5, seed=0):
    """The benchmark's random gnODE as a `gnode.models.GatedNODE` (depth 2 F and G, ReLU hidden layers)."""
    from gnode.models import GatedNODE

    model = GatedNODE(n, depth_F=2, depth_G=2, width_F=[hidden], width_G=[hidden], dtype=F64)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in (*model.F.layers, *model.G.layers):
            layer.weight.copy_(
                torch.randn(layer.weight.shape, generator=g, dtype=F64) * gain / layer.weight.shape[1] ** 0.5
            )
            layer.bias.copy_(torch.randn(layer.bias.shape, generator=g, dtype=F64) * 0.1)
    u0 = torch.randn(batch, n, generator=torch.Generator().manual_seed(1), dtype=F64)
    return gnode_problem(
        "gnode_batch",
        model,
        u0,
        (0.0, t1),
        torch.linspace(0.0, t1, 21, dtype=F64),
        description=f"random gnODE (gain 1.5, biases 0.1), n={n}, hidden {hidden}, batch {batch}, t in [0, {t1:g}]",
        meta={"n": n, "hidden": hidden, "batch": batch, "gain": gain, "seed": seed},
    )


def trials(tols):
    forward = [SolverSpec("gnode", a) for a in (gnode.Tsit5(), gnode.DP5(), gnode.Vern7())]
    forward += [
        SolverSpec("torchdiffeq", "dopri5"),
        SolverSpec("torchode", "Dopri5"),
        SolverSpec("torchode", "Tsit5"),
        SolverSpec("diffrax", "Tsit5"),
        SolverSpec("diffrax", "Dopri5"),
    ]
    gradient = [
        SolverSpec("gnode", gnode.Tsit5(), gnode.BackpropAdjoint()),
        SolverSpec("gnode", gnode.DP5(), gnode.BackpropAdjoint()),
        SolverSpec("gnode", gnode.Tsit5(), gnode.InterpolatingAdjoint()),
        SolverSpec("torchdiffeq", "dopri5", "backprop"),
        SolverSpec("torchdiffeq", "dopri5", "adjoint"),
        SolverSpec("torchode", "Tsit5", "AutoDiffAdjoint"),
        SolverSpec("diffrax", "Tsit5", "RecursiveCheckpointAdjoint"),
        SolverSpec("diffrax", "Tsit5", "BacksolveAdjoint"),
    ]
    spec = ProblemSpec.of("gnode_batch", factory=random_gnode)
    return [Trial(spec, s, tols) for s in forward] + [Trial(spec, s, tols, True) for s in gradient]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="3 tolerances, 2 repeats")
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "gnode_batch.json"))
    args = p.parse_args(argv)
    tols = (1e-4, 1e-6, 1e-8) if args.quick else tuple(10.0**-k for k in range(3, 9))
    config = BenchConfig(
        repeats=2 if args.quick else 3, threads=1, metric="linf", memory="none" if args.quick else "all"
    )
    results = run_set(trials(tols), config)
    out = Path(args.out)
    with tempfile.TemporaryDirectory() as tmp:
        files = results.write(tmp)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(files["json"], out)
        figures = out.with_suffix("")
        figures.mkdir(exist_ok=True)
        for what, path in files.items():
            if what.startswith("figure"):
                shutil.copyfile(path, figures / Path(path).name)
    for r in results.rows:
        print(_fmt(r))
    print()
    print(format_comparisons(results.comparisons()))
    print(f"\nwrote {out} and figures in {figures}")
    return json.loads(out.read_text())


def _fmt(r):
    def g(k, f="{:9.4f}"):
        v = r.get(k)
        return f.format(v) if isinstance(v, (int, float)) and math.isfinite(v) else " " * len(f.format(0.0))

    err = r.get("grad_error") if r["mode"] == "gradient" else r.get("linf")
    return (
        f"{r['solver'][:44]:44s} {r['mode']:8s} rtol {r['reltol']:.0e}  {r.get('status', ''):7s} "
        f"err {err if err is not None else float('nan'):.2e}  nf {g('nf', '{:7.0f}')}  time {g('time')} s  "
        f"overhead x{g('overhead', '{:5.2f}')}"
    )


if __name__ == "__main__":
    main()
