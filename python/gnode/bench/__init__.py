"""Solver benchmarking: work-precision sets for solutions and gradients, across methods, engines and peers.

    from gnode.bench import BenchConfig, ProblemSpec, plan, run_set
    trials = plan(["gnode_critical", "robertson"], gradients=True)      # problems × solvers × tolerances
    results = run_set(trials, BenchConfig(repeats=3))                     # measure every point
    results.write("bench-out")                                            # JSON, CSV, comparisons, figures

Modules (imports go downward):
    errors          final / l2 / L2 errors (DiffEqDevTools' definitions), gradient error
    cache           the on-disk reference cache and its keys
    fields          the vector fields re-implemented in NumPy, mpmath and JAX
    problems        classic stiff problems (Robertson, Van der Pol, HIRES, Oregonator) and the stiff gnODE
    gnode_problems  `BenchProblem` and every named benchmark problem
    reference       SciPy float64 references, mpmath extended-precision references, reference gradients
    measure         timing (min of repeats after warm-up) and peak memory
    solvers         the solver interface; gnode's engines as solvers
    peers           torchdiffeq, torchode, diffrax adapters (optional)
    specs           picklable problem/solver/trial descriptions, their journal keys, and the default sets
    workprecision   the runner (`run_trial`, `run_set`) and `BenchResults`; trials run in this process or as
                    Ray tasks through `gnode.jobs` executors, journaled by `gnode.jobs.Journal`
    compare         matched-error comparisons (time and nf ratios)
    plots, report   diagrams and result files
    cli             `gnode bench`
"""

from gnode.bench.cache import ReferenceCache, default_cache_dir
from gnode.bench.compare import compare_all, format_comparisons
from gnode.bench.errors import gradient_error, solution_errors
from gnode.bench.gnode_problems import PROBLEMS, BenchProblem, make_problem
from gnode.bench.reference import mp_reference, reference_gradient, reference_solution
from gnode.bench.specs import ProblemSpec, SolverSpec, Trial, default_solvers, plan
from gnode.bench.workprecision import BenchConfig, BenchResults, run_set, run_trial

__all__ = [
    "PROBLEMS",
    "BenchConfig",
    "BenchProblem",
    "BenchResults",
    "ProblemSpec",
    "ReferenceCache",
    "SolverSpec",
    "Trial",
    "compare_all",
    "default_cache_dir",
    "default_solvers",
    "format_comparisons",
    "gradient_error",
    "make_problem",
    "mp_reference",
    "plan",
    "reference_gradient",
    "reference_solution",
    "run_set",
    "run_trial",
    "solution_errors",
]
