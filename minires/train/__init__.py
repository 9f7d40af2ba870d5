"""Training on CIFAR-10: the Trainer (used by `minires train` and `minires eval`), metrics files and plots."""
from .trainer import (TrainConfig, Trainer, TrainingDiverged, evaluate, evaluate_checkpoint, freeze_backbone,
                      load_pretrained, param_groups)

__all__ = ["TrainConfig", "Trainer", "TrainingDiverged", "evaluate", "evaluate_checkpoint", "freeze_backbone",
           "load_pretrained", "param_groups"]
