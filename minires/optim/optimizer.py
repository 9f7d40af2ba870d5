"""The Optimizer base class: parameter groups, per-parameter state, zero_grad, state_dict."""
from __future__ import annotations

import numbers

import numpy as np

from .. import backend
from ..tensor import enable_grad
from ..tensor import Tensor


class _Required:
    """Marker for a hyper-parameter with no default (SGD's lr): every group must give it."""

    def __repr__(self):
        return "<required parameter>"


required = _Required()


def check_number(opt: str, name: str, value, minimum=None, below=None):
    """Check that value is a real number >= minimum (and < below when given); raise naming opt and name."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Real, np.floating, np.integer)):
        raise TypeError(f"{opt}: argument '{name}' must be a number, got {value!r}")
    if minimum is not None and not value >= minimum:  # `not >=` also catches NaN
        raise ValueError(f"{opt}: invalid {name} {value!r} (must be >= {minimum})")
    if below is not None and not value < below:
        raise ValueError(f"{opt}: invalid {name} {value!r} (must be < {below})")
    return value


class Optimizer:
    """Base class: holds `param_groups` (list of dicts) and `state` (per-parameter dicts of arrays)."""

    _scalar_state: tuple = ()  # state entries that are Python numbers (Adam's 'step'), not arrays

    def __init__(self, params, defaults: dict):
        self.defaults = dict(defaults)
        self._validate_group(self.defaults, from_defaults=True)
        self.state: dict = {}  # parameter -> {name: array or number}; keyed by identity (Tensor hash)
        self.param_groups: list = []
        name = type(self).__name__
        if isinstance(params, Tensor) or isinstance(params, dict):
            raise TypeError(f"{name}: argument 'params' must be an iterable of Tensors or of dicts (param groups), "
                            f"got a single {type(params).__name__}")
        try:
            groups = list(params)
        except TypeError:
            raise TypeError(f"{name}: argument 'params' must be an iterable of Tensors or dicts, "
                            f"got {type(params).__name__}") from None
        if len(groups) == 0:
            raise ValueError(f"{name}: argument 'params' is an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    def _validate_group(self, group: dict, from_defaults: bool = False) -> None:
        """Raise ValueError/TypeError on bad hyper-parameters; subclasses override."""

    def add_param_group(self, param_group: dict) -> None:
        """Add a group of parameters with its own options (missing options come from `defaults`)."""
        name = type(self).__name__
        if not isinstance(param_group, dict):
            raise TypeError(f"{name}: a param group must be a dict, got {type(param_group).__name__}")
        group = dict(param_group)
        if "params" not in group:
            raise ValueError(f"{name}: a param group needs a 'params' entry")
        params = group["params"]
        params = [params] if isinstance(params, Tensor) else list(params)
        if len(params) == 0:
            raise ValueError(f"{name}: argument 'params' has a param group with no parameters")
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError(f"{name}: argument 'params' can only hold Tensors, got {type(p).__name__}")
            if not p.is_leaf:
                raise ValueError(f"{name}: argument 'params' holds a non-leaf Tensor of shape {p.shape}; "
                                 "optimise the leaf it was computed from")
            if p.dtype.kind != "f":
                raise TypeError(f"{name}: argument 'params' holds a {p.dtype} Tensor of shape {p.shape}; "
                                "only floating-point tensors can be optimised")
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        ids = set()
        for p in params:
            if id(p) in seen or id(p) in ids:
                raise ValueError(f"{name}: argument 'params' gives a parameter of shape {p.shape} twice "
                                 "(in one group or in two groups)")
            ids.add(id(p))
        group["params"] = params
        for key, value in self.defaults.items():
            if value is required and key not in group:
                raise ValueError(f"{name}: param group does not give '{key}', which has no default")
            group.setdefault(key, value)
        self._validate_group(group)
        self.param_groups.append(group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear every parameter's gradient (to None by default, as PyTorch)."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    g = p.grad.array if isinstance(p.grad, Tensor) else p.grad
                    g[...] = 0

    def step(self, closure=None):
        """Update every parameter that has a gradient; `closure` re-evaluates the loss first if given."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad.array if isinstance(p.grad, Tensor) else p.grad
                if tuple(g.shape) != p.shape:
                    raise ValueError(f"{type(self).__name__}.step: gradient of shape {tuple(g.shape)} "
                                     f"does not match its parameter's shape {p.shape}")
                # NOTE: cast the gradient to the parameter's dtype so float32 stays float32 everywhere.
                self._update(p, g.astype(p.dtype, copy=False), group, self.state.setdefault(p, {}))
        return loss

    def _update(self, p: Tensor, g, group: dict, state: dict) -> None:
        """Update p.array in place from its gradient g (same dtype/device); subclasses override."""
        raise NotImplementedError

    # ---- checkpoints ------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """{'state': {index: {name: ndarray or number}}, 'param_groups': [{..., 'params': [indices]}]}.

        Parameters are numbered in group order; arrays are NumPy copies, so no pickle is needed to store them.
        """
        index, groups = {}, []
        for group in self.param_groups:
            packed = {k: _plain(v) for k, v in group.items() if k != "params"}
            packed["params"] = []
            for p in group["params"]:
                index[id(p)] = len(index)
                packed["params"].append(index[id(p)])
            groups.append(packed)
        state = {}
        for p, s in self.state.items():
            if id(p) in index and s:
                state[index[id(p)]] = {k: _state_value_out(v) for k, v in s.items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore options and state saved by `state_dict`, moving arrays to each parameter's device and dtype."""
        name = f"{type(self).__name__}.load_state_dict"
        if not isinstance(state_dict, dict) or "state" not in state_dict or "param_groups" not in state_dict:
            raise ValueError(f"{name}: expected a dict with 'state' and 'param_groups'")
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"{name}: the saved state has {len(saved_groups)} param groups, "
                             f"this optimizer has {len(self.param_groups)}")
        by_index = {}
        for i, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(f"{name}: param group {i} has {len(saved['params'])} parameters in the saved "
                                 f"state and {len(group['params'])} in this optimizer")
            for idx, p in zip(saved["params"], group["params"]):
                by_index[int(idx)] = p
        new_state = {}
        for idx, s in state_dict["state"].items():
            idx = int(idx)  # JSON turns int keys into strings
            if idx not in by_index:
                raise ValueError(f"{name}: the saved state refers to parameter {idx}, which no param group lists")
            p = by_index[idx]
            new_state[p] = {k: _state_value_in(v, p, name, k, k in self._scalar_state) for k, v in s.items()}
        new_groups = []
        for saved, group in zip(saved_groups, self.param_groups):
            new = {k: _restore_type(v, group.get(k)) for k, v in saved.items() if k != "params"}
            new["params"] = group["params"]
            new_groups.append(new)
        self.param_groups = new_groups
        self.state = new_state

    def __repr__(self):
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {v}" for k, v in sorted(group.items()) if k != "params"]
        return "\n".join(lines) + "\n)"


def _plain(value):
    """Group options as plain Python values (JSON-able); tuples stay tuples until JSON makes them lists."""
    if isinstance(value, np.generic):
        return value.item()
    return value


def _state_value_out(value):
    if isinstance(value, Tensor):
        value = value.array
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (int, float)):
        return value
    return np.array(backend.to_numpy(value), copy=True)


def _state_value_in(value, p: Tensor, name: str, key: str, scalar: bool):
    if isinstance(value, Tensor):
        value = value.array
    if isinstance(value, (int, float, np.generic)) or scalar:
        arr = backend.to_numpy(value)
        if arr.size != 1:
            raise ValueError(f"{name}: state '{key}' must be a number, got an array of shape {arr.shape}")
        return arr.reshape(()).item()
    arr = backend.to_numpy(value)
    if arr.shape != p.shape:
        raise ValueError(f"{name}: state '{key}' has shape {arr.shape}, its parameter has shape {p.shape}")
    if arr.dtype.kind == "f":
        arr = arr.astype(p.dtype, copy=False)
    return backend.to_device(np.array(arr, copy=True), p.device)


def _restore_type(saved, current):
    """Undo JSON's tuple -> list (betas) so a loaded group looks like a fresh one."""
    if isinstance(current, tuple) and isinstance(saved, list):
        return tuple(saved)
    return saved
