"""Expressivity: how complex a trajectory a model configuration can generate (Kim, Can & Krishnamurthy,
ICML 2023, sec. 4; the definition used here is our own, see `gnode.expressivity.measure`).

    families   FamilySpec: gnODE, nODE, mGRU, Elman, linear ODE, discrete GRU/LSTM as autonomous generators
    ensemble   many members of one architecture stacked and integrated as one batch (fits at the price of one)
    fit        fit_ensemble: each member to its own target; the verdict re-solved at tight tolerances
    measure    measure_expressivity: the largest K reproduced (geometric grid, then k-section)
    sweep      plan_points / run_points: many configurations, journaled, locally or on Ray
    report, plots   results.json, CSVs, table and figures
    cli        `gnode expressivity`

The targets are `gnode.tasks.expressivity.fourier_target`.
"""

from gnode.expressivity.ensemble import GRUEnsemble, LSTMEnsemble, ODEEnsemble, ensemble_of
from gnode.expressivity.families import FAMILIES, FamilySpec, matched_latent
from gnode.expressivity.fit import FitConfig, FitOutcome, fit_ensemble
from gnode.expressivity.measure import MeasureConfig, measure_expressivity, target_for
from gnode.expressivity.sweep import SweepGrid, expressivity_trial, plan_points, run_points

__all__ = [
    "FAMILIES",
    "FamilySpec",
    "FitConfig",
    "FitOutcome",
    "GRUEnsemble",
    "LSTMEnsemble",
    "MeasureConfig",
    "ODEEnsemble",
    "SweepGrid",
    "ensemble_of",
    "expressivity_trial",
    "fit_ensemble",
    "matched_latent",
    "measure_expressivity",
    "plan_points",
    "run_points",
    "target_for",
]
