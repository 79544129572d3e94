"""The gnODE model family (Kim, Can & Krishnamurthy, ICML 2023, sec. 2), its export, and baselines.

GatedNODE     tau dh/dt = G(h, x) * (-h + F(h, x))        the general vector field (gated.py)
NeuralODE     G = 1 (leak=False: Chen et al.)              reductions: the same class with settings fixed
MinimalGRU    L_h = L_z = 1
ElmanRNN      rate form -h + W phi(h) + U x + b, or classical -h + phi(W h + U x + b)
SequenceModel inputs at sample times -> solve -> linear readout (sequence.py)
DiscreteGRU, DiscreteLSTM   discrete-time baselines with the same forward(x, times) (baselines.py)
from_spec     rebuild any of them from spec() + flat_parameters() (spec.py documents the format)
init.py       "stable" | "critical" | "chaotic" initialisation and the critical gain
"""

from gnode.models.baselines import DiscreteGRU, DiscreteLSTM
from gnode.models.gated import ElmanRNN, GatedNODE, MinimalGRU, NeuralODE
from gnode.models.init import (
    REGIMES,
    critical_gain,
    leading_eigenvalue_at_origin,
    origin_jacobian,
    origin_rate,
    predicted_leading_real_part,
)
from gnode.models.mlp import FeedForward, LayerSpec
from gnode.models.sequence import SequenceModel, SequenceOutput, check_targets
from gnode.models.spec import from_spec

__all__ = [
    "REGIMES",
    "DiscreteGRU",
    "DiscreteLSTM",
    "ElmanRNN",
    "FeedForward",
    "GatedNODE",
    "LayerSpec",
    "MinimalGRU",
    "NeuralODE",
    "SequenceModel",
    "SequenceOutput",
    "check_targets",
    "critical_gain",
    "from_spec",
    "leading_eigenvalue_at_origin",
    "origin_jacobian",
    "origin_rate",
    "predicted_leading_real_part",
]
