"""The expressivity of a model configuration: the largest target complexity K it reproduces.

Kim, Can & Krishnamurthy (ICML 2023, sections 4 and 5.3, appendices C and F) introduce "a novel measure
of expressivity which probes the capacity of a neural network to generate complex trajectories". Their
sections 4 and 5.3 and the appendices were not at hand when this was written (only the abstract and
introduction are), and the authors' code (github.com/timkimd/RNNTools.jl) holds the flip-flop experiments
only, so this module implements a measure of our own that tests the same claim, and says so:

- The task. An autonomous model (no input; a learnable initial state h0; a linear readout to d_out
  outputs) must generate a target y*(t) on [0, T]: K random Fourier modes whose fastest period is the
  correlation time tau_c, so that K = T / tau_c counts its independent features
  (`gnode.tasks.expressivity.fourier_target`).
- Reproducing. A configuration reproduces y* when, after fitting (`gnode.expressivity.fit`: Adam within
  a budget of steps), its normalised error NMSE = MSE / Var(y*), with the trained ODE re-solved at tight
  tolerances, is at most epsilon (0.05 by default).
- The measure. For each K, `seeds` fits are made, fit s starting from initial weights drawn with seed s
  and fitting the target drawn with seed (s, K); K passes when the median NMSE over them is at most
  epsilon. The expressivity is the largest passing K, searched on a geometric grid (1, 2, 4, ...) and then
  refined between the last passing and the first failing grid value. The refinement is a bisection that
  fits up to `refine` values of K per round instead of one (k-section): the values of a round are fitted
  side by side in one ensemble for about the price of one. The search assumes that passing is monotone in
  K; every fit made is reported, so that a reader can see where it was not.

When no grid value fails, the result is censored: the expressivity is at least the largest K of the grid.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import asdict, dataclass, field

import torch

from gnode.expressivity.ensemble import ensemble_of
from gnode.expressivity.families import FamilySpec
from gnode.expressivity.fit import FitConfig, fit_ensemble
from gnode.tasks.expressivity import FourierTarget, fourier_target


@dataclass(frozen=True)
class MeasureConfig:
    """How the expressivity of one configuration is measured (module docstring).

    epsilon:      largest NMSE that counts as reproduced.
    seeds:        fits per K (initial weights and target draw); the median decides.
    grid:         the geometric grid of K, increasing.
    per_round:    grid values fitted side by side in one round (the next round only runs if all of them pass).
    refine:       K values per refinement round (1: plain bisection).
    d_out, tau_c, samples_per_feature:  the targets (`fourier_target`).
    fit:          the fitting budget and method (`FitConfig`).
    seed:         base seed: fit s uses seed + s for the weights and (seed + s, K) for its target.
    """

    epsilon: float = 0.05
    seeds: int = 3
    grid: tuple[int, ...] = (1, 2, 4, 8, 16, 32)
    per_round: int = 3
    refine: int = 7
    d_out: int = 1
    tau_c: float = 2 * math.pi
    samples_per_feature: int = 6
    fit: FitConfig = field(default_factory=FitConfig)
    seed: int = 0

    def __post_init__(self):
        if isinstance(self.fit, dict):  # rebuilt from JSON
            object.__setattr__(self, "fit", FitConfig(**self.fit))
        object.__setattr__(self, "grid", tuple(self.grid) if isinstance(self.grid, (list, tuple)) else self.grid)
        e = self.epsilon
        if isinstance(e, bool) or not isinstance(e, (int, float)) or not (0 < e < math.inf):
            raise ValueError(f"epsilon must be a positive number (an NMSE threshold such as 0.05), got {e!r}")
        if not isinstance(self.grid, tuple) or not self.grid:
            raise ValueError(f"the K grid is empty; give increasing integers >= 1 such as 1 2 4 8, got {self.grid!r}")
        if any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in self.grid):
            raise ValueError(f"the K grid must hold integers >= 1, got {list(self.grid)}")
        if any(b <= a for a, b in zip(self.grid, self.grid[1:])):
            raise ValueError(f"the K grid must be strictly increasing, got {list(self.grid)}")
        for name in ("seeds", "per_round", "refine", "d_out", "samples_per_feature"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise TypeError(f"seed must be an integer, got {self.seed!r}")
        if not (isinstance(self.tau_c, (int, float)) and 0 < self.tau_c < math.inf):
            raise ValueError(f"tau_c must be a positive number, got {self.tau_c!r}")
        if not isinstance(self.fit, FitConfig):
            raise TypeError(f"fit must be a FitConfig, got {type(self.fit).__name__}")

    def as_dict(self) -> dict:
        d = asdict(self)
        d["grid"] = list(self.grid)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> MeasureConfig:
        return cls(**{**d, "grid": tuple(d.get("grid", cls.grid)), "fit": FitConfig(**d.get("fit", {}))})


def target_for(config: MeasureConfig, features: int, seed: int) -> FourierTarget:
    """The target of the fit with `seed` at K = `features` (drawn from its own generator, deterministically)."""
    return fourier_target(
        features,
        d_out=config.d_out,
        tau_c=config.tau_c,
        samples_per_feature=config.samples_per_feature,
        generator=torch.Generator().manual_seed(seed * 100_003 + features),
    )


def fit_round(spec: FamilySpec, features: list[int], config: MeasureConfig, *, progress=None) -> list[dict]:
    """Fit `config.seeds` members per K in `features`, side by side; one dict per fit:
    {"K", "seed", "nmse", "nmse_train", "diverged", "steps", "y"} (y the fitted trajectory (S, d_out) as lists)."""
    rows = [(k, config.seed + s) for k in features for s in range(config.seeds)]
    members = [spec.build(seed) for _, seed in rows]
    targets = [target_for(config, k, seed) for k, seed in rows]
    outcome = fit_ensemble(ensemble_of(members), targets, config.fit, epsilon=config.epsilon, progress=progress)
    out = []
    for r, ((k, seed), target) in enumerate(zip(rows, targets)):
        y = outcome.outputs[r, : target.times.numel()]
        out.append(
            {
                "K": k,
                "seed": seed,
                "nmse": outcome.nmse[r],
                "nmse_train": outcome.nmse_train[r],
                "diverged": outcome.diverged[r],
                "steps": outcome.steps,
                "y": y.tolist(),
            }
        )
    return out


def median_nmse(fits: list[dict], features: int) -> float:
    """Median over seeds of the NMSE at K = `features` (a failed fit counts as infinitely bad)."""
    values = [f["nmse"] if math.isfinite(f["nmse"]) else math.inf for f in fits if f["K"] == features]
    return statistics.median(values) if values else math.nan


def _between(lo: int, hi: int, count: int) -> list[int]:
    """Up to `count` integers strictly between lo and hi, evenly spread."""
    inner = list(range(lo + 1, hi))
    if len(inner) <= count:
        return inner
    return (
        sorted({inner[round(i * (len(inner) - 1) / (count - 1))] for i in range(count)})
        if count > 1
        else [inner[len(inner) // 2]]
    )


def _median_fit(fits: list[dict], features: int) -> dict:
    """A copy of the fit at K = `features` whose NMSE is the median (the lower middle one for even counts)."""
    at = sorted(
        (f for f in fits if f["K"] == features), key=lambda f: f["nmse"] if math.isfinite(f["nmse"]) else math.inf
    )
    return dict(at[(len(at) - 1) // 2])


def measure_expressivity(spec: FamilySpec, config: MeasureConfig | None = None, *, progress=None) -> dict:
    """The expressivity of `spec` (module docstring), as a plain dict (JSON-ready):

    expressivity  the largest K reproduced (0: not even K = 1)
    censored      True when every grid value passed (the expressivity is then at least the largest grid K)
    upper         the smallest K found to fail (None when censored)
    parameters    trained parameters of one member
    fits          every fit made: {"K", "seed", "nmse", "nmse_train", "diverged", "steps"}
    median        {K: median NMSE} for every K tried
    examples      {"reproduced": the fit at K = expressivity, "failed": the fit at K = upper} (the seed with
                  the median NMSE; with "y", the fitted trajectory at the target's samples), for figures
    rounds, seconds

    `progress(round_label, step, best_nmse)` is called during fitting (for progress bars)."""
    config = config or MeasureConfig()
    if spec.d_out != config.d_out:
        raise ValueError(
            f"the family spec has d_out={spec.d_out} but the measure's targets have "
            f"d_out={config.d_out}; make them match"
        )
    start = time.perf_counter()
    fits: list[dict] = []
    rounds = 0

    def run(features: list[int], label: str) -> None:
        nonlocal rounds
        rounds += 1
        cb = (lambda step, best: progress(label, step, best)) if progress is not None else None
        fits.extend(fit_round(spec, features, config, progress=cb))

    def passes(k: int) -> bool:
        return median_nmse(fits, k) <= config.epsilon

    lo, hi = 0, None
    grid = list(config.grid)
    for i in range(0, len(grid), config.per_round):
        chunk = grid[i : i + config.per_round]
        run(chunk, f"K in {chunk}")
        failed = [k for k in chunk if not passes(k)]
        if failed:
            hi = failed[0]
            lo = max([k for k in grid if k < hi], default=0)
            break
        lo = chunk[-1]
    while hi is not None and hi - lo > 1:
        candidates = _between(lo, hi, config.refine)
        run(candidates, f"K in ({lo}, {hi})")
        for k in candidates:
            if passes(k):
                lo = k
            else:
                hi = k
                break
    tried = sorted({f["K"] for f in fits})
    examples = {which: _median_fit(fits, k) for which, k in (("reproduced", lo), ("failed", hi)) if k}
    for f in fits:
        f.pop("y")
    return {
        **spec.as_dict(),
        "label": spec.label,
        "parameters": spec.parameter_count(),
        "expressivity": lo,
        "censored": hi is None,
        "upper": hi,
        "epsilon": config.epsilon,
        "median": {str(k): median_nmse(fits, k) for k in tried},
        "fits": fits,
        "examples": examples,
        "rounds": rounds,
        "seconds": time.perf_counter() - start,
    }
