"""Training on CIFAR-10: the Trainer (behind `minires train` and `minires eval`), train_step, metrics and plots."""
from .config import TrainConfig
from .evaluation import evaluate, evaluate_checkpoint
from .step import StepResult, TrainingDiverged, train_step
from .trainer import Trainer
from ..recipes.base import param_groups
from .weights import freeze_backbone, load_pretrained

__all__ = ["StepResult", "TrainConfig", "Trainer", "TrainingDiverged", "evaluate", "evaluate_checkpoint",
           "freeze_backbone", "load_pretrained", "param_groups", "train_step"]
