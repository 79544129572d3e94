"""The benchmark problems: gnODEs (random at each initialisation regime, stiff, small, trained) and the classic
stiff set, each as a `BenchProblem` that every solver — native engines and peers — integrates identically.

    gnode_stable, gnode_critical, gnode_chaotic   random GatedNODE(n, depth 2, ReLU hidden layers) at the
                      regime's initialisation (`gnode.models.init`), float64, batch of random initial states
    gnode_stiff       the gnODE of `gnode.bench.problems.stiff_gnode`: gate biases spread so that the unit
                      timescales tau / G_i span 1e-4 .. 1
    gnode_small       a smooth 3-unit gnODE (tanh F, sigmoid G) small enough for an mpmath reference
    flipflop          the gnODE of a trained flip-flop run (`gnode train flipflop`), on test-set inputs
    robertson, vanderpol, hires, oregonator       `gnode.bench.problems.CLASSIC`

`make_problem(name, **options)` builds one by name; `PROBLEMS` lists the names with their descriptions.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from gnode.bench.cache import Digest
from gnode.problem import Control, ODEProblem

F64 = torch.float64


@dataclass(frozen=True, eq=False)
class BenchProblem:
    """One benchmark problem: a row-wise torch vector field and everything needed to reproduce its solve.

    f:           f(t (B,), u (B, n)) or f(t, u, x) with inputs; float64. A gnODE-family model for gnODE
                 problems (then `params` are its parameters, the gradient's variables).
    u0:          (batch, n) float64 initial states.
    tspan:       (t0, t1).
    saveat:      (T,) the times the solution is compared at (`l2`); the last one is t1 (`final`).
    inputs:      a `gnode.Control` for input-driven fields (its sample times are breakpoints).
    atol_ratio:  abstol = reltol * atol_ratio for every solver at every tolerance (component scale).
    stiff:       chooses the default reference (Radau, else DOP853) and the default method list.
    loss_weights: (batch, T, n); the gradient benchmarks differentiate L = sum(loss_weights * u(saveat)).
    numpy_f, numpy_jac: float64 NumPy f(t, y (n,), b, x) and its Jacobian, for the SciPy reference (b is the
                 trajectory index; x the input at t or None).
    mp_f:        f(t, y, b, x) on mpmath lists for an extended-precision reference (small smooth problems).
    jax_kind:    ("gnode", GnodeWeights) or ("classic", name) for the diffrax adapter; None: no JAX version.
    """

    name: str
    f: Callable
    u0: torch.Tensor
    tspan: tuple[float, float]
    saveat: torch.Tensor
    inputs: Control | None = None
    atol_ratio: float = 1e-2
    stiff: bool = False
    description: str = ""
    loss_weights: torch.Tensor | None = None
    numpy_f: Callable | None = field(default=None, repr=False)
    numpy_jac: Callable | None = field(default=None, repr=False)
    mp_f: Callable | None = field(default=None, repr=False)
    jax_kind: tuple | None = field(default=None, repr=False)
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.u0.ndim != 2 or self.u0.dtype != F64:
            raise ValueError(
                f"BenchProblem {self.name}: u0 must be a float64 (batch, n) tensor, got "
                f"{self.u0.dtype} {tuple(self.u0.shape)}"
            )
        t1 = self.tspan[1]
        s = self.saveat
        if s.ndim != 1 or s.numel() < 2 or abs(float(s[-1]) - t1) > 1e-12 * max(1.0, abs(t1)):
            raise ValueError(f"BenchProblem {self.name}: saveat must be (T >= 2,) ending at t1 = {t1}")
        if self.loss_weights is None:
            gen = torch.Generator().manual_seed(12345)
            w = torch.randn(self.batch, s.numel(), self.n, generator=gen, dtype=F64) / (self.batch * s.numel()) ** 0.5
            object.__setattr__(self, "loss_weights", w)

    @property
    def batch(self) -> int:
        return self.u0.shape[0]

    @property
    def n(self) -> int:
        return self.u0.shape[1]

    @property
    def params(self) -> tuple[torch.Tensor, ...]:
        """The gradient's variables: the parameters of a module f that require grad (empty otherwise)."""
        if isinstance(self.f, torch.nn.Module):
            return tuple(p for p in self.f.parameters() if p.requires_grad)
        return ()

    @property
    def param_names(self) -> tuple[str, ...]:
        if isinstance(self.f, torch.nn.Module):
            return tuple(k for k, p in self.f.named_parameters() if p.requires_grad)
        return ()

    @property
    def differentiable(self) -> bool:
        return len(self.params) > 0

    def ode_problem(self, f: Callable | None = None) -> ODEProblem:
        """The `gnode.ODEProblem` (optionally with another f, e.g. a counting wrapper of this one)."""
        return ODEProblem(self.f if f is None else f, self.u0, self.tspan, inputs=self.inputs)

    def loss(self, u_save: torch.Tensor) -> torch.Tensor:
        """L = sum(loss_weights * u(saveat)): the scalar the gradient benchmarks differentiate."""
        return (self.loss_weights.to(u_save) * u_save).sum()

    def input_at(self, t: float, b: int, left: bool = False) -> np.ndarray | None:
        """The input of trajectory b at time t as float64 NumPy (left=True: the limit from the left)."""
        if self.inputs is None:
            return None
        tt = torch.tensor([t], dtype=F64)
        seg = self.inputs.segment(tt, left=left)
        return self.inputs.evaluate(tt, seg, torch.tensor([b if self.inputs.batch > 1 else 0]))[0].numpy()

    def breakpoints(self) -> np.ndarray:
        """Times strictly inside tspan where the inputs have breakpoints (solvers must restart or land there)."""
        if self.inputs is None:
            return np.empty(0)
        t0, t1 = self.tspan
        s = self.inputs.times.detach().double().numpy()
        return np.unique(s[(s > min(t0, t1)) & (s < max(t0, t1))])

    def fingerprint(self) -> str:
        """A digest of everything that determines the solution and the loss (the reference cache key's base)."""
        d = Digest("problem").add("name", self.name).add("u0", self.u0).add("tspan", tuple(map(float, self.tspan)))
        d.add("saveat", self.saveat).add("loss_weights", self.loss_weights)
        if self.inputs is not None:
            d.add("inputs", (self.inputs.times, self.inputs.values, self.inputs.interpolation))
        if isinstance(self.f, torch.nn.Module):
            d.add("module", repr(self.f))
            for k, v in self.f.state_dict().items():
                d.add(k, v)
            spec = getattr(self.f, "spec", None)
            if callable(spec):
                d.add("spec", spec())
        else:
            code = getattr(self.f, "__code__", None)
            d.add("function", getattr(self.f, "__qualname__", repr(self.f)))
            if code is not None:
                d.add("code", (code.co_code, repr(code.co_consts)))
        d.add("meta", {k: v for k, v in self.meta.items() if isinstance(v, (int, float, str, bool))})
        return d.hexdigest()


# ------------------------------------------------------------------------------------------------ builders


def gnode_problem(
    name: str,
    model,
    u0: torch.Tensor,
    tspan,
    saveat,
    *,
    inputs=None,
    stiff=False,
    description="",
    atol_ratio=1e-2,
    meta=None,
    extended: bool = False,
) -> BenchProblem:
    """A BenchProblem around any float64 gnODE-family model (`gnode.models.GatedNODE` or a reduction), with the
    NumPy and JAX twins of its vector field that the references and diffrax need. `extended=True` adds the
    mpmath twin for an extended-precision reference: only for small, smooth, non-stiff problems (a Taylor
    series in 30-digit arithmetic takes minutes even there)."""
    from gnode.bench.fields import GnodeWeights, mp_rhs, numpy_jacobian, numpy_rhs

    w = GnodeWeights.from_model(model)
    f_np, jac_np = numpy_rhs(w), numpy_jacobian(w)
    mp_f = None
    if extended:
        mp_field = mp_rhs(w)
        mp_f = lambda t, y, b, x=None: mp_field(t, y, x)
    return BenchProblem(
        name,
        model,
        u0,
        tspan,
        saveat,
        inputs=inputs,
        atol_ratio=atol_ratio,
        stiff=stiff,
        description=description,
        numpy_f=lambda t, y, b, x=None: f_np(t, y, x),
        numpy_jac=lambda t, y, b, x=None: jac_np(t, y, x),
        mp_f=mp_f,
        jax_kind=("gnode", w),
        meta=dict(meta or {}),
    )


def random_gnode(
    regime: str = "critical",
    *,
    n: int = 32,
    hidden: int = 64,
    depth: int = 2,
    batch: int = 64,
    t1: float = 20.0,
    saves: int = 21,
    seed: int = 0,
    gain: float | None = None,
) -> BenchProblem:
    """A random gnODE tau dh/dt = G ⊙ (-h + F), F and G of `depth` layers (ReLU hidden layers of width
    `hidden`, tanh/sigmoid outputs), initialised in `regime` ("stable", "critical", "chaotic"), tau = 1,
    float64; u0 ~ N(0, 1) per component; saved at `saves` equally spaced times on [0, t1]."""
    from gnode.models import GatedNODE

    gen = torch.Generator().manual_seed(seed)
    widths = [hidden] * (depth - 1) if depth > 1 else None
    model = GatedNODE(
        n,
        depth_F=depth,
        depth_G=depth,
        width_F=widths,
        width_G=widths,
        init=regime,
        gain=gain,
        generator=gen,
        dtype=F64,
    )
    u0 = torch.randn(batch, n, generator=gen, dtype=F64)
    saveat = torch.linspace(0.0, t1, saves, dtype=F64)
    return gnode_problem(
        f"gnode_{regime}",
        model,
        u0,
        (0.0, t1),
        saveat,
        description=f"random gnODE, {regime} init, n={n}, depth {depth}, hidden {hidden}, "
        f"batch {batch}, t in [0, {t1:g}]",
        meta={"regime": regime, "n": n, "hidden": hidden, "depth": depth, "batch": batch, "seed": seed},
    )


def small_gnode(*, n: int = 3, batch: int = 2, t1: float = 4.0, seed: int = 3, gain: float = 1.5) -> BenchProblem:
    """A smooth gnODE small enough for an mpmath reference: depth-1 F (tanh) and G (sigmoid), chaotic-gain
    weights, biases 0.1 N(0, 1) so the gates are not all 1/2, saved at 9 times on [0, t1]."""
    from gnode.models import GatedNODE

    gen = torch.Generator().manual_seed(seed)
    model = GatedNODE(n, init="chaotic", gain=gain, generator=gen, dtype=F64)
    with torch.no_grad():
        for layer in (model.F.layers[0], model.G.layers[0]):
            layer.bias.copy_(0.1 * torch.randn(n, generator=gen, dtype=F64))
    u0 = torch.randn(batch, n, generator=gen, dtype=F64)
    return gnode_problem(
        "gnode_small",
        model,
        u0,
        (0.0, t1),
        torch.linspace(0.0, t1, 9, dtype=F64),
        description=f"smooth gnODE (tanh F, sigmoid G, depth 1), n={n}, batch {batch}, "
        f"t in [0, {t1:g}]; has an mpmath reference",
        meta={"n": n, "batch": batch, "seed": seed},
        extended=True,
    )


def stiff_gnode_problem(
    *,
    n: int = 8,
    batch: int = 8,
    g_min: float = 1e-4,
    tau: float = 1e-4,
    t1: float = 1.0,
    seed: int = 0,
    saves: int = 11,
) -> BenchProblem:
    """The wide-gate-timescale gnODE of `gnode.bench.problems.stiff_gnode` (timescales tau/G_i from ~tau to
    tau/g_min), with a float64 copy of its weights."""
    from gnode.bench.problems import stiff_gnode

    sp = stiff_gnode(n=n, batch=batch, g_min=g_min, tau=tau, t1=t1, seed=seed)
    model = copy.deepcopy(sp.f).double()
    for p in model.parameters():
        p.requires_grad_(True)  # the gradient benchmarks differentiate the weights
    u0 = torch.as_tensor(sp.u0, dtype=F64)
    saveat = torch.linspace(0.0, t1, saves, dtype=F64)
    return gnode_problem(
        "gnode_stiff",
        model,
        u0,
        (0.0, t1),
        saveat,
        stiff=True,
        description=f"stiff gnODE: {sp.description}, batch {batch}",
        meta={"n": n, "batch": batch, "g_min": g_min, "tau": tau, "seed": seed},
    )


def classic_problem(name: str, *, saves: int = 11) -> BenchProblem:
    """A problem of `gnode.bench.problems.CLASSIC` (robertson, vanderpol, hires, oregonator), batch 1.
    Robertson is saved at log-spaced times (its components change over decades of t)."""
    from gnode.bench import problems

    byname = {p.name: p for p in problems.CLASSIC}
    if name not in byname:
        raise ValueError(f"unknown classic problem {name!r}; known: {', '.join(byname)}")
    sp = byname[name]
    t0, t1 = sp.tspan
    if name == "robertson":
        saveat = torch.cat([torch.zeros(1, dtype=F64), torch.logspace(-5, np.log10(t1), saves - 1, dtype=F64)])
    else:
        saveat = torch.linspace(t0, t1, saves, dtype=F64)
    u0 = torch.as_tensor(np.atleast_2d(sp.u0), dtype=F64)
    return BenchProblem(
        name,
        sp.f,
        u0,
        sp.tspan,
        saveat,
        atol_ratio=sp.atol_scale,
        stiff=True,
        description=sp.description,
        numpy_f=lambda t, y, b, x=None: sp.f_np(t, y, b),
        numpy_jac=lambda t, y, b, x=None: sp.jac_np(t, y, b),
        jax_kind=("classic", name),
    )


def flipflop_problem(run: str | Path | None = None, *, batch: int = 16, weights: str = "best") -> BenchProblem:
    """The trained gnODE of a flip-flop run folder (`gnode train flipflop --out RUN`), driven by the first
    `batch` test sequences (zero-order-hold inputs), from the run's initial state, in float64.

    The run is loaded through `gnode.training.experiment.load_run`; raises `FileNotFoundError` (what to do)
    when no run is given or found, and `ImportError` when the training package is not there."""
    if run is None:
        raise FileNotFoundError(
            "the flipflop problem needs a trained run folder: train one with "
            "`gnode train flipflop --out RUN` and pass it (gnode bench --run RUN)"
        )
    try:
        from gnode.training.experiment import load_run
    except ImportError as e:  # pragma: no cover - the training package is part of gnode
        raise ImportError(f"gnode.training is not available ({e}); the flipflop problem loads runs through it") from e
    loaded = load_run(run)
    seq = loaded.model
    vf = getattr(seq, "vector_field", None)
    if vf is None or not callable(getattr(vf, "spec", None)):
        raise ValueError(
            f"the run in {run} holds a {loaded.config.model.kind!r} model, not an ODE model with a "
            "gnODE-family vector field"
        )
    vf = copy.deepcopy(vf).double()
    split = loaded.data.test.to(F64)
    k = min(batch, len(split))
    x = split.inputs[:k]
    times = split.times
    h0 = getattr(seq, "h0", None)
    u0 = h0.detach().double().expand(k, -1).clone() if h0 is not None else torch.zeros(k, vf.n, dtype=F64)
    control = Control(times, x, getattr(seq, "interpolation", "zoh"))
    t0, t1 = float(times[0]), float(times[-1])
    saveat = times if times.numel() <= 201 else torch.linspace(t0, t1, 101, dtype=F64)
    return gnode_problem(
        "flipflop",
        vf,
        u0,
        (t0, t1),
        saveat,
        inputs=control,
        description=f"trained flip-flop gnODE ({Path(run).name}, {loaded.weights} weights, "
        f"N={vf.n}), {k} test sequences, t in [{t0:g}, {t1:g}]",
        meta={"run": str(run), "weights": loaded.weights, "batch": k, "test_mse": loaded.summary.get("test_mse")},
    )


def with_parameters(problem: BenchProblem, theta: torch.Tensor) -> BenchProblem:
    """The same gnODE problem with its parameters (`problem.params`, flattened in order) replaced by `theta`;
    used by the finite-difference checks of the reference gradient."""
    if not problem.differentiable or problem.jax_kind is None or problem.jax_kind[0] != "gnode":
        raise ValueError(f"problem {problem.name} is not a gnODE problem with parameters")
    model = copy.deepcopy(problem.f)
    params = [p for p in model.parameters() if p.requires_grad]
    sizes = [p.numel() for p in params]
    if theta.numel() != sum(sizes):
        raise ValueError(f"theta has {theta.numel()} entries but the model has {sum(sizes)} parameters")
    with torch.no_grad():
        for p, chunk in zip(params, torch.split(theta.to(F64), sizes)):
            p.copy_(chunk.reshape(p.shape))
    new = gnode_problem(
        problem.name,
        model,
        problem.u0,
        problem.tspan,
        problem.saveat,
        inputs=problem.inputs,
        stiff=problem.stiff,
        description=problem.description,
        atol_ratio=problem.atol_ratio,
        meta=problem.meta,
        extended=problem.mp_f is not None,
    )
    return replace(new, loss_weights=problem.loss_weights)


PROBLEMS: dict[str, tuple[Callable[..., BenchProblem], str]] = {
    "gnode_stable": (lambda **kw: random_gnode("stable", **kw), "random gnODE, stable initialisation"),
    "gnode_critical": (lambda **kw: random_gnode("critical", **kw), "random gnODE, critical initialisation"),
    "gnode_chaotic": (lambda **kw: random_gnode("chaotic", **kw), "random gnODE, chaotic initialisation"),
    "gnode_stiff": (stiff_gnode_problem, "gnODE with gate timescales 1e-4..1 (stiff)"),
    "gnode_small": (small_gnode, "3-unit smooth gnODE with an mpmath reference"),
    "flipflop": (flipflop_problem, "trained flip-flop gnODE from a run folder (needs --run)"),
    "robertson": (lambda **kw: classic_problem("robertson", **kw), "Robertson kinetics (stiff)"),
    "vanderpol": (lambda **kw: classic_problem("vanderpol", **kw), "Van der Pol, mu = 1e3 (stiff)"),
    "hires": (lambda **kw: classic_problem("hires", **kw), "HIRES (stiff)"),
    "oregonator": (lambda **kw: classic_problem("oregonator", **kw), "Oregonator (stiff)"),
}


def make_problem(name: str, **options) -> BenchProblem:
    """The problem called `name` (see `PROBLEMS`), with its builder's keyword options."""
    if name not in PROBLEMS:
        raise ValueError(f"unknown benchmark problem {name!r}; known: {', '.join(PROBLEMS)}")
    return PROBLEMS[name][0](**options)
