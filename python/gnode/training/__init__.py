"""Training: the trainer, checkpoints, per-epoch metrics and figures of a run."""

from gnode.training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from gnode.training.metrics import MetricsLog
from gnode.training.trainer import TrainConfig, Trainer, TrainingDiverged, TrainResult, evaluate_model

__all__ = ["Trainer", "TrainConfig", "TrainResult", "TrainingDiverged", "evaluate_model", "CheckpointError",
           "load_checkpoint", "save_checkpoint", "MetricsLog"]
