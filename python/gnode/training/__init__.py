"""Training: the trainer, checkpoints, per-epoch metrics and figures of a run.

From Python (the command line `gnode train flipflop` does the same through `gnode.training.experiment`):

    import gnode
    from gnode.models import GatedNODE, SequenceModel
    from gnode.tasks import FlipFlopConfig, make_flipflop
    from gnode.training import TrainConfig, Trainer

    data = make_flipflop(FlipFlopConfig(dt=1.0, pulse_width=1.0))
    field = GatedNODE(3, 3, depth_F=2, depth_G=2, width_F=[32], width_G=[32])
    model = SequenceModel(field, 3, alg=gnode.RK4(), solve_kwargs={"dt": 0.5})
    result = Trainer(model, data, TrainConfig(epochs=30), out_dir="runs/mine").fit()
    result.summary["test_mse"]
"""

from gnode.training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from gnode.training.metrics import MetricsLog
from gnode.training.trainer import (
    TrainConfig,
    Trainer,
    TrainingDiverged,
    TrainResult,
    evaluate_model,
)

__all__ = [
    "CheckpointError",
    "MetricsLog",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "TrainingDiverged",
    "evaluate_model",
    "load_checkpoint",
    "save_checkpoint",
]
