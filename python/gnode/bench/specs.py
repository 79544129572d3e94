"""Plain, picklable descriptions of what to benchmark — problems, solvers, trials — and the default sets.

A `Trial` (one problem × one solver × one mode, over a list of tolerances) is the unit of work: it carries no
tensors or compiled code, only names and small frozen objects, so it can be shipped to a Ray or
torch.distributed worker and rebuilt there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from gnode.bench.gnode_problems import BenchProblem, make_problem

NONSTIFF_RELTOLS = tuple(10.0**-k for k in range(3, 11))  # 1e-3 .. 1e-10
STIFF_RELTOLS = tuple(10.0**-k for k in range(3, 10))  # 1e-3 .. 1e-9
GRADIENT_RELTOLS = tuple(10.0**-k for k in range(3, 9))  # 1e-3 .. 1e-8
LOW_ORDER_TIGHTEST = 1e-8  # methods of order <= 3 stop here: tighter tolerances cost 10^(k/3) more each decade
PEERS = ("torchdiffeq", "torchode", "diffrax")


@dataclass(frozen=True)
class ProblemSpec:
    """A problem by name (`gnode.bench.gnode_problems.PROBLEMS`) with its builder's options, or built by
    `factory(**options)` (a module-level function returning a `BenchProblem`, for problems of one's own)."""

    name: str
    options: tuple[tuple[str, object], ...] = ()
    factory: Callable[..., BenchProblem] | None = None

    @classmethod
    def of(cls, name: str, factory=None, **options) -> ProblemSpec:
        return cls(name, tuple(sorted(options.items())), factory)

    def build(self) -> BenchProblem:
        if self.factory is not None:
            return self.factory(**dict(self.options))
        return make_problem(self.name, **dict(self.options))


@dataclass(frozen=True)
class SolverSpec:
    """A solver: `package` "gnode" (with `engine` "torch", "julia" or "scipy" and `method` a gnode algorithm
    object, `sensealg` a gnode sensitivity object, `compile` the native engine's compiled path) or a peer package
    with method/sensealg named as it names them (e.g. ("torchdiffeq", "dopri5", "adjoint"),
    ("diffrax", "Tsit5", "RecursiveCheckpointAdjoint"))."""

    package: str
    method: object
    sensealg: object = None
    engine: str = "torch"
    compile: bool | str = False  # gnode's native engine: solve(..., compile=...), its compile time recorded apart
    controller: object = None  # gnode: solve(..., controller=...), e.g. PIController(norm="batch")

    def build(self):
        if self.package == "gnode":
            from gnode.bench.solvers import EngineSolver

            return EngineSolver(self.method, self.engine, self.sensealg, self.compile, self.controller)
        from gnode.bench import peers

        cls = {
            "torchdiffeq": peers.TorchdiffeqSolver,
            "torchode": peers.TorchodeSolver,
            "diffrax": peers.DiffraxSolver,
        }.get(self.package)
        if cls is None:
            raise ValueError(f"unknown solver package {self.package!r}; known: gnode, {', '.join(PEERS)}")
        return cls(self.method, self.sensealg)

    @property
    def label(self) -> str:
        return self.build().label

    @property
    def order(self) -> int | None:
        """The method's order when known (gnode algorithms and the peers' common methods)."""
        if self.package == "gnode":
            return getattr(self.method, "order", None)
        return {"bosh3": 3, "Bosh3": 3, "Heun": 2, "adaptive_heun": 2, "Kvaerno3": 3}.get(self.method)


@dataclass(frozen=True)
class Trial:
    problem: ProblemSpec
    solver: SolverSpec
    reltols: tuple[float, ...]
    gradient: bool = False


def solver_label(spec: SolverSpec) -> str:
    """The solver's label, or "package method" when it cannot be built here (an unknown package still needs a
    name in the rows that say it was skipped)."""
    try:
        return spec.label
    except Exception:  # noqa: BLE001 - any failure to build leaves the plain name
        return f"{spec.package} {spec.method}"


def problem_key(spec: ProblemSpec) -> str:
    """What identifies a problem spec across runs (in a journal): its name, options and factory (when it has
    one)."""
    factory = f"{spec.factory.__module__}.{spec.factory.__qualname__}:" if spec.factory is not None else ""
    return f"{factory}{spec.name}({','.join(f'{k}={v!r}' for k, v in spec.options)})"


def trial_key(trial: Trial) -> str:
    """What identifies a trial across runs (the solver by its label, which names the method, its options, the
    engine and the sensealg: method objects carry no stable identity of their own)."""
    reltols = ",".join(f"{r:.3g}" for r in sorted(trial.reltols))
    return (
        f"{problem_key(trial.problem)}|{solver_label(trial.solver)}|"
        f"{'gradient' if trial.gradient else 'forward'}|{reltols}"
    )


def _gnode(alg, sensealg=None, engine="torch") -> SolverSpec:
    return SolverSpec("gnode", alg, sensealg, engine)


def default_solvers(
    problem: BenchProblem, gradient: bool, *, engines=("torch", "julia"), peers=PEERS
) -> list[SolverSpec]:
    """The methods a problem is measured with by default: the native engine's methods that suit it, the same
    methods on the other gnode engines asked for, and the peers' closest counterparts."""
    import gnode
    from gnode.engines import scipy as sp

    out: list[SolverSpec] = []
    if gradient:
        if problem.stiff:
            native = [
                (gnode.Rodas5P(), gnode.BackpropAdjoint()),
                (gnode.Rodas5P(), gnode.InterpolatingAdjoint()),
                (gnode.KenCarp4(), gnode.BackpropAdjoint()),
            ]
            peer = [("diffrax", "Kvaerno5", "RecursiveCheckpointAdjoint")]
        else:
            native = [
                (gnode.Tsit5(), gnode.BackpropAdjoint()),
                (gnode.DP5(), gnode.BackpropAdjoint()),
                (gnode.Tsit5(), gnode.InterpolatingAdjoint()),
                (gnode.Tsit5(), gnode.BacksolveAdjoint()),
                (gnode.Tsit5(), gnode.QuadratureAdjoint()),
            ]
            peer = [
                ("torchdiffeq", "dopri5", "backprop"),
                ("torchdiffeq", "dopri5", "adjoint"),
                ("torchode", "Tsit5", "AutoDiffAdjoint"),
                ("diffrax", "Tsit5", "RecursiveCheckpointAdjoint"),
                ("diffrax", "Tsit5", "BacksolveAdjoint"),
            ]
        for engine in engines:
            if engine == "scipy":
                continue  # forward only
            out += [_gnode(a, s, engine) for a, s in native]
        out += [SolverSpec(p, m, s) for p, m, s in peer if p in peers]
        return out
    if problem.stiff:
        native = [
            gnode.Rosenbrock23(),
            gnode.Rodas4(),
            gnode.Rodas5P(),
            gnode.TRBDF2(),
            gnode.KenCarp4(),
            gnode.Kvaerno5(),
            gnode.RadauIIA5(),
            gnode.RadauIIA9(),
            gnode.AutoTsit5(stiffalg=gnode.Rodas5P()),
        ]
        peer = [("diffrax", "Kvaerno3"), ("diffrax", "Kvaerno5")]
        if problem.name.startswith("gnode"):  # moderately stiff: explicit methods still finish, slowly
            native = [gnode.Tsit5()] + native
            peer += [("torchdiffeq", "dopri5"), ("torchode", "Tsit5"), ("diffrax", "Tsit5")]
        for engine in engines:
            if engine != "scipy":
                out += [_gnode(a, None, engine) for a in native]
        if "scipy" in engines or problem.batch == 1:  # SciPy's stiff solvers as peers on the classic set
            out += [_gnode(a, None, "scipy") for a in (sp.ScipyRadau(), sp.ScipyBDF(), sp.ScipyLSODA())]
    else:
        native = [gnode.BS3(), gnode.DP5(), gnode.Tsit5(), gnode.Vern7()]
        peer = [
            ("torchdiffeq", "bosh3"),
            ("torchdiffeq", "dopri5"),
            ("torchdiffeq", "dopri8"),
            ("torchode", "Dopri5"),
            ("torchode", "Tsit5"),
            ("diffrax", "Bosh3"),
            ("diffrax", "Dopri5"),
            ("diffrax", "Tsit5"),
            ("diffrax", "Dopri8"),
        ]
        for engine in engines:
            if engine != "scipy":
                out += [_gnode(a, None, engine) for a in native]
        if "scipy" in engines:
            out += [_gnode(sp.ScipyDOP853(), None, "scipy")]
    out += [SolverSpec(p, m) for p, m in peer if p in peers]
    return out


def default_reltols(problem: BenchProblem, solver: SolverSpec, gradient: bool) -> tuple[float, ...]:
    tols = GRADIENT_RELTOLS if gradient else STIFF_RELTOLS if problem.stiff else NONSTIFF_RELTOLS
    order = solver.order
    if order is not None and order <= 3:
        tols = tuple(t for t in tols if t >= LOW_ORDER_TIGHTEST * 0.999)
    return tols


def plan(
    problems,
    *,
    gradients: bool = False,
    forward: bool = True,
    solvers=None,
    reltols=None,
    engines=("torch", "julia"),
    peers=PEERS,
) -> list[Trial]:
    """The trials of a work-precision set: for each problem spec, each solver (default: `default_solvers`)
    in forward mode and, with `gradients`, in gradient mode (problems with parameters only)."""
    trials = []
    for spec in problems:
        spec = spec if isinstance(spec, ProblemSpec) else ProblemSpec.of(spec)
        problem = spec.build()
        modes = ([False] if forward else []) + ([True] if gradients and problem.differentiable else [])
        for gradient in modes:
            chosen = (
                solvers if solvers is not None else default_solvers(problem, gradient, engines=engines, peers=peers)
            )
            for s in chosen:
                if (s.sensealg is not None) != gradient:
                    continue
                tols = tuple(reltols) if reltols is not None else default_reltols(problem, s, gradient)
                trials.append(Trial(spec, s, tols, gradient))
    return trials
