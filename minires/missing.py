"""What minires does not provide, said in PyTorch's terms.

A name a minires namespace lacks is an AttributeError naming the PyTorch API (`mr.nn.Transformer`:
"minires does not provide torch.nn.Transformer"), and `import minires.x` of a module minires lacks an
ImportError saying the same, so a PyTorch script stops on the line that needs the missing piece.
Both stay what Python expects (hasattr and `try: import ... except ImportError` keep working).
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys

SEE = "see README 'Your PyTorch script on minires'"


def torch_name(name: str) -> str:
    """The PyTorch name of a minires name: minires.nn.X -> torch.nn.X, minires.vision.X -> torchvision.X."""
    if name == "minires.vision" or name.startswith("minires.vision."):
        return "torchvision" + name[len("minires.vision"):]
    return "torch" + name[len("minires"):] if name == "minires" or name.startswith("minires.") else name


def message(name: str) -> str:
    return f"minires does not provide {torch_name(name)} (PyTorch API); {SEE}"


def install(module, aliases=None) -> None:
    """Give `module` a __getattr__: `aliases` names answer (mr.long, which must not shadow a builtin in the
    module itself), a submodule not yet imported is imported on first use, anything else is an
    AttributeError naming the PyTorch API."""
    name, aliases = module.__name__, dict(aliases or {})

    def __getattr__(attr: str):
        if attr in aliases:
            return aliases[attr]
        if attr.startswith("_"):  # private and dunder names are no PyTorch API: Python's own message
            raise AttributeError(f"module {name!r} has no attribute {attr!r}")
        path = module.__dict__.get("__path__")  # NOTE: not getattr, which would call this again
        if path is not None and importlib.machinery.PathFinder.find_spec(f"{name}.{attr}", path) is not None:
            return importlib.import_module(f"{name}.{attr}")  # as `import torch` makes torch.utils usable
        raise AttributeError(message(f"{name}.{attr}"))

    def __dir__():
        return sorted(set(module.__dict__) | set(aliases))

    module.__getattr__, module.__dir__ = __getattr__, __dir__


class MissingModuleFinder(importlib.abc.MetaPathFinder):
    """Last on sys.meta_path: a minires module that no other finder found is an ImportError naming PyTorch's."""

    def find_spec(self, fullname, path=None, target=None):
        parent = fullname.rpartition(".")[0]
        if not fullname.startswith("minires.") or parent not in sys.modules:
            return None
        # NOTE: name=None, not fullname: `from minires.nn import Transformer` tries this import after the
        # attribute, and Python would drop an error naming the module it tried for its own vaguer one.
        raise ModuleNotFoundError(message(fullname), name=None)


def install_finder() -> None:
    """Append the finder once (a reload of minires must not add a second)."""
    if not any(type(f).__name__ == MissingModuleFinder.__name__ for f in sys.meta_path):  # also across reloads
        sys.meta_path.append(MissingModuleFinder())
