"""Interpretability and stiffness telemetry of trained vector fields.

vector_field.py  FrozenField: h -> f(h, x*) with the input held, its Jacobian and JVPs
fixed_points.py  find_fixed_points (Sussillo & Barak + Newton polish, dedup, classes), sample_states
spectra.py       eigenvalues, spectral radius (exact, or Krylov power iterates via JVPs), classify,
                 stiffness_ratio
stability.py     stability polynomial of an explicit RK tableau, its real-axis bound, |R(z)|
telemetry.py     stiffness_telemetry along a solution (per trajectory and step), telemetry_summary
plots.py         attractor views, flow slices with nullclines, spectra, telemetry figures
report.py        analyze_model: figures + JSON for a trained model (a run folder: `gnode analyze RUN`,
                 gnode.training.analyze, since analysis never imports training)

>>> from gnode.analysis import find_fixed_points, sample_states
>>> out = model(x, times)                                   # a SequenceModel
>>> fps = find_fixed_points(model, sample_states(out.h, 1000, noise=0.05), x=None)
>>> fps.counts(), fps.points[fps.mask("marginally_stable")]
"""

from gnode.analysis.fixed_points import (
    FixedPointConfig,
    FixedPoints,
    find_fixed_points,
    sample_states,
)
from gnode.analysis.report import AnalysisConfig, analyze_model
from gnode.analysis.spectra import (
    CLASSES,
    MARGINAL,
    SADDLE,
    STABLE,
    UNSTABLE,
    classify,
    eigenvalues,
    spectral_radius,
    spectral_radius_krylov,
    stiffness_ratio,
)
from gnode.analysis.stability import amplification, stability_bound, stability_polynomial
from gnode.analysis.telemetry import (
    StiffnessTelemetry,
    pointwise_telemetry,
    stiffness_telemetry,
    telemetry_summary,
)
from gnode.analysis.vector_field import FrozenField

__all__ = [
    "CLASSES",
    "MARGINAL",
    "SADDLE",
    "STABLE",
    "UNSTABLE",
    "AnalysisConfig",
    "FixedPointConfig",
    "FixedPoints",
    "FrozenField",
    "StiffnessTelemetry",
    "amplification",
    "analyze_model",
    "classify",
    "eigenvalues",
    "find_fixed_points",
    "pointwise_telemetry",
    "sample_states",
    "spectral_radius",
    "spectral_radius_krylov",
    "stability_bound",
    "stability_polynomial",
    "stiffness_ratio",
    "stiffness_telemetry",
    "telemetry_summary",
]
