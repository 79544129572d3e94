"""Return codes of a solve, named as SciML's `ReturnCode`, each with a message saying what to try."""

from __future__ import annotations

import enum


class ReturnCode(enum.IntEnum):
    """Outcome of one trajectory's solve. `Success` is the only good outcome."""

    Default = 0
    Success = 1
    MaxIters = 2
    DtLessThanMin = 3
    Unstable = 4
    ConvergenceFailure = 5
    Failure = 6

    @property
    def successful(self) -> bool:
        return self is ReturnCode.Success

    @property
    def hint(self) -> str:
        return self.hint_for("torch")

    def hint_for(self, engine: str) -> str:
        """What to try, naming stiff methods that `engine` has."""
        return _HINTS[self].format(stiff=STIFF_SUGGESTIONS.get(engine, STIFF_SUGGESTIONS["torch"]))

    def __str__(self) -> str:  # print(sol.retcode) shows "Success", not the IntEnum's "1"
        return self.name

    def __format__(self, spec: str) -> str:
        return format(self.name, spec)


# the stiff methods each engine has, for the hints (the scipy engine has SciPy's solvers, not Rodas5P)
STIFF_SUGGESTIONS = {
    "torch": "Rodas5P(), KenCarp4() or AutoTsit5(Rodas5P())",
    "julia": "Rodas5P(), KenCarp4() or AutoTsit5(Rodas5P())",
    "scipy": "ScipyRadau(), ScipyBDF() or ScipyLSODA()",
}


_HINTS = {
    ReturnCode.Default: "the solve did not finish (this is a bug: please report it)",
    ReturnCode.Success: "",
    ReturnCode.MaxIters: (
        "the step budget `maxiters` ran out before the end of the time span; the problem may be "
        "stiff (try a stiff method such as {stiff}) or just long (raise `maxiters`)"
    ),
    ReturnCode.DtLessThanMin: (
        "the step size fell below `dtmin`; the problem is likely stiff at this point (try "
        "{stiff}) or has a singularity (a finite-time blow-up)"
    ),
    ReturnCode.Unstable: (
        "the state became non-finite (NaN or Inf); with a fixed step, lower `dt`; with an "
        "adaptive method, tighten `reltol`/`abstol` or check the vector field for overflow"
    ),
    ReturnCode.ConvergenceFailure: (
        "the Newton iterations of an implicit method kept failing; tighten the tolerances, or provide an exact Jacobian"
    ),
    ReturnCode.Failure: "the solve failed",
}


class SolveError(RuntimeError):
    """A solve ended without `Success` for at least one trajectory (raised when `throw=True`)."""

    def __init__(self, retcode: ReturnCode, index: int, t: float, engine: str, alg: str, detail: str = ""):
        self.retcode, self.index, self.t = retcode, index, t
        where = f"trajectory {index} (batch index) at t = {t:.6g}"
        msg = f"{engine} engine, {alg}: {retcode.name} in {where}"
        if detail:
            msg += f" ({detail})"
        msg += (
            f". What to try: {retcode.hint_for(engine)}. Pass throw=False to get the partial solution and "
            "per-trajectory `retcodes` instead."
        )
        super().__init__(msg)
