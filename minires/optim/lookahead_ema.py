"""Lookahead-EMA: an exponential moving average of a model's weights that the model is pulled back to.

Every `update(decay)` moves the average towards the model, ema <- decay * ema + (1 - decay) * model,
then sets the model to the average; run every few optimizer steps with a decay that grows over
training, this is the lookahead of Jordan's airbench (arXiv 2404.00498). It covers every floating
entry of the model's state_dict, BatchNorm running statistics included (counters are left alone).
"""
from __future__ import annotations

import numbers

import numpy as np

from .. import backend


class LookaheadEMA:
    """Averages of model's floating state_dict entries; `update(decay)` blends and writes them back."""

    def __init__(self, model):
        if not hasattr(model, "state_dict"):
            raise TypeError(f"LookaheadEMA: expected a Module, got {type(model).__name__}")
        self.model = model
        self.averages = {name: t.array.copy() for name, t in model.state_dict().items()
                         if np.dtype(t.dtype).kind == "f"}

    def update(self, decay: float) -> None:
        """ema = decay * ema + (1 - decay) * model, then model = ema (decay 1 only writes ema back)."""
        if isinstance(decay, bool) or not isinstance(decay, numbers.Real) or not 0.0 <= decay <= 1.0:
            raise ValueError(f"LookaheadEMA.update: decay must be a number in [0, 1], got {decay!r}")
        state = self.model.state_dict()
        for name, avg in self.averages.items():
            current = state[name].array
            avg += (1.0 - float(decay)) * (current - avg)  # (same shape as the entry)
            current[...] = avg

    def state_dict(self) -> dict:
        """{name: NumPy array} of the averages (host copies)."""
        return {name: backend.to_numpy(a).copy() for name, a in self.averages.items()}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore averages saved by state_dict (every name, each of its shape)."""
        if set(state_dict) != set(self.averages):
            missing, unexpected = sorted(set(self.averages) - set(state_dict)), sorted(set(state_dict) - set(self.averages))
            raise ValueError(f"LookaheadEMA.load_state_dict: entries differ from the model's (missing {missing}, "
                             f"unexpected {unexpected})")
        for name, a in state_dict.items():
            if tuple(np.shape(a)) != tuple(self.averages[name].shape):
                raise ValueError(f"LookaheadEMA.load_state_dict: {name} has shape {tuple(np.shape(a))}, the "
                                 f"model's is {tuple(self.averages[name].shape)}")
            self.averages[name][...] = backend.to_device(np.asarray(a, dtype=self.averages[name].dtype),
                                                         backend.device_of(self.averages[name]))
