"""Training on CIFAR-10: the Trainer (used by `minires train` and `minires eval`), metrics files and plots."""
from .evaluation import evaluate, evaluate_checkpoint
from .trainer import TrainConfig, Trainer, TrainingDiverged, freeze_backbone, load_pretrained, param_groups

__all__ = ["TrainConfig", "Trainer", "TrainingDiverged", "evaluate", "evaluate_checkpoint", "freeze_backbone",
           "load_pretrained", "param_groups"]
