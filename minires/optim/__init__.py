"""Optimizers (SGD, Adam, AdamW), learning-rate schedulers and the lookahead EMA, with PyTorch's names and update equations."""
from . import lr_scheduler
from .adam import Adam, AdamW
from .optimizer import Optimizer
from .grad_scaler import GradScaler
from .lookahead_ema import LookaheadEMA
from .sgd import SGD

__all__ = ["GradScaler", "Optimizer", "SGD", "Adam", "AdamW", "lr_scheduler", "LookaheadEMA"]
