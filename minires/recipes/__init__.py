"""Training recipes for `minires train --recipe NAME` (and the Trainer): `get(name)`, `names()`.

A recipe fixes the options of a published training method and adds what options cannot say (a
data-dependent initialisation, an EMA of the weights, test-time augmentation); see base.Recipe.
"""
from __future__ import annotations

from .airbench94 import Airbench94
from .base import Recipe

_RECIPES = {"airbench94": Airbench94}


def names() -> list:
    """The recipe names `get` accepts."""
    return list(_RECIPES)


def get(name=None) -> Recipe:
    """A fresh recipe by name; None gives the classic run (base.Recipe)."""
    if name is None:
        return Recipe()
    if name not in _RECIPES:
        raise ValueError(f"unknown recipe {name!r}; choose one of: {', '.join(names())}")
    return _RECIPES[name]()


__all__ = ["Recipe", "Airbench94", "get", "names"]
