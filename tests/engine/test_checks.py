"""Checks in one place (issue 21): each op's arguments are checked in its wrapper, through minires/_validate.py.

Structural tests on the source (ast): no Function's forward in minires/ops or minires/functional raises or
calls a check, and no module there keeps a private check helper of its own."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

import minires as mr
import minires.functional as F

PACKAGE = Path(mr.__file__).parent
CHECKED = sorted((PACKAGE / "ops").glob("*.py")) + sorted((PACKAGE / "functional").glob("*.py"))
CHECK_ERRORS = {"TypeError", "ValueError"}


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def _validate_names(tree: ast.Module) -> set:
    """Names a module imported from minires._validate (from .._validate import x)."""
    return {alias.asname or alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
            and (node.module or "").endswith("_validate") for alias in node.names}


def _calls_a_check(node: ast.AST, imported: set) -> bool:
    """node calls _validate.something(...) or a name imported from _validate."""
    for call in ast.walk(node):
        if not isinstance(call, ast.Call):
            continue
        f = call.func
        if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and f.value.id == "_validate":
            return True
        if isinstance(f, ast.Name) and f.id in imported:
            return True
    return False


def _forwards(tree: ast.Module):
    """(class name, forward's FunctionDef) of every class in the module that defines forward."""
    for cls in tree.body:
        if isinstance(cls, ast.ClassDef):
            for item in cls.body:
                if isinstance(item, ast.FunctionDef) and item.name == "forward":
                    yield cls.name, item


def _raised_names(fn: ast.FunctionDef) -> set:
    """The exception class names fn raises (`raise X(...)`, `raise X`) outside an except clause: one that
    rewords the error of the work itself (NumPy's, on the write or the cast) is not an argument check."""
    rewording = {id(n) for h in ast.walk(fn) if isinstance(h, ast.ExceptHandler) for n in ast.walk(h)}
    names = set()
    for node in ast.walk(fn):
        if isinstance(node, ast.Raise) and node.exc is not None and id(node) not in rewording:
            exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            names.add(exc.id if isinstance(exc, ast.Name) else ast.dump(exc))
    return names


def forward_checks(path: Path) -> list:
    """'Cls.forward' for each forward in path that raises or calls a _validate check."""
    tree = _tree(path)
    imported = _validate_names(tree)
    return [f"{path.name}:{cls}.forward" for cls, fn in _forwards(tree)
            if any(isinstance(n, ast.Raise) for n in ast.walk(fn)) or _calls_a_check(fn, imported)]


def private_check_helpers(path: Path) -> list:
    """Module-level private functions in path that raise TypeError/ValueError: check helpers of their own."""
    return [f"{path.name}:{fn.name}" for fn in _tree(path).body
            if isinstance(fn, ast.FunctionDef) and fn.name.startswith("_") and _raised_names(fn) & CHECK_ERRORS]


def test_the_structural_checks_can_fail(tmp_path):
    """Both detectors flag a module written the old way (a raising forward, a private check helper)."""
    bad = tmp_path / "bad.py"
    bad.write_text(
        "from .._validate import pair\n"
        "class Op(Function):\n"
        "    def forward(self, x, k=1):\n"
        "        if k < 1:\n"
        "            raise ValueError('op: k')\n"
        "        return x\n"
        "class Op2(Function):\n"
        "    def forward(self, x, k=1):\n"
        "        return x * pair('op2', 'k', k, 1)[0]\n"
        "def _dim(op, dim):\n"
        "    if not isinstance(dim, int):\n"
        "        raise TypeError(f'{op}: dim')\n"
        "    return dim\n"
        "def _cast(op, x):\n"
        "    try:\n"
        "        return x.astype(int)\n"
        "    except TypeError as exc:\n"
        "        raise TypeError(f'{op}: {exc}') from None\n"
        "def public(x):\n"
        "    raise ValueError('a wrapper may check inline')\n")
    assert forward_checks(bad) == ["bad.py:Op.forward", "bad.py:Op2.forward"]
    assert private_check_helpers(bad) == ["bad.py:_dim"]  # _cast only rewords the cast's own error


@pytest.mark.parametrize("path", CHECKED, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_no_forward_checks_its_arguments(path):
    """The wrapper (the function users call) checks; forward only computes."""
    assert forward_checks(path) == []


@pytest.mark.parametrize("path", CHECKED, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_no_module_keeps_its_own_check_helpers(path):
    """A reusable check is a function of minires/_validate.py, not a private copy beside the op."""
    assert private_check_helpers(path) == []


def test_checks_are_named_and_defined_only_in_validate():
    """No module in ops/ or functional/ defines a function named as a check (*_arg, check_*): they live in
    minires._validate (a module may import one there under its old name for old importers)."""
    defined = [f"{p.name}:{fn.name}" for p in CHECKED for fn in _tree(p).body if isinstance(fn, ast.FunctionDef)
               and (fn.name.endswith("_arg") or fn.name.startswith("check_"))]
    assert defined == []


def test_ops_args_is_gone():
    """ops/args.py was merged into _validate.py: one argument-check module."""
    assert not (PACKAGE / "ops" / "args.py").exists()


def test_losses_live_in_the_loss_module():
    """nll_loss and mse_loss (and their Functions) are defined in functional/loss.py, still F.nll_loss etc."""
    from minires.functional import loss
    for name in ("cross_entropy", "nll_loss", "mse_loss", "CrossEntropy", "NLLLoss", "MSELoss"):
        assert getattr(loss, name).__module__ == "minires.functional.loss"
    assert F.nll_loss is loss.nll_loss and F.mse_loss is loss.mse_loss
    assert mr.nn.functional.nll_loss(F.log_softmax(mr.zeros(2, 3), 1), mr.tensor([0, 2])).shape == ()


@pytest.mark.parametrize("call, kind, message", [
    (lambda x: x + mr.zeros(3), ValueError, r"add: shapes \(2, 4\) and \(3,\) cannot be broadcast"),
    (lambda x: mr.zeros(3) * x, ValueError, r"mul: shapes \(3,\) and \(2, 4\) cannot be broadcast"),
    (lambda x: x @ mr.zeros(3, 2), ValueError, r"matmul: inner dimensions differ.*\(2, 4\) and \(3, 2\)"),
    (lambda x: x.clamp(), ValueError, r"clamp: at least one of min and max.*\(2, 4\)"),
    (lambda x: mr.where(x > 0, x, mr.zeros(3)), ValueError, r"where: condition \(2, 4\).*\(3,\)"),
    (lambda x: -(x > 0), TypeError, r"neg: negation of a bool tensor \(shape \(2, 4\)\)"),
    (lambda x: (x > 0).min(), TypeError, r"neg: negation of a bool tensor"),
    (lambda x: mr.maximum(x, mr.zeros(3)), ValueError, r"maximum: shapes \(2, 4\) and \(3,\)"),
    (lambda x: F.softmax(x, 2), ValueError, r"softmax: argument 'dim' \(2\) is out of range.*\(2, 4\)"),
    (lambda x: F.cross_entropy(x, mr.tensor([0, 4])), ValueError, r"cross_entropy: target 4 is out of bounds"),
    (lambda x: F.cross_entropy(x, mr.tensor([0])), ValueError, r"cross_entropy: 'target' must have shape \(2,\)"),
    (lambda x: F.cross_entropy(x, mr.tensor([0, 1]), label_smoothing=2.0), ValueError, r"label_smoothing"),
    (lambda x: F.nll_loss(x, mr.tensor([0, 1]), ignore_index=1.5), TypeError, r"nll_loss: .*'ignore_index'"),
    (lambda x: F.mse_loss(x, mr.zeros(4)), ValueError, r"mse_loss: .*\(2, 4\) and \(4,\)"),
])
def test_wrapper_checks_name_the_op_and_shapes(call, kind, message):
    """The checks moved out of forward (and out of the loss bodies) still name the op, argument and shapes."""
    with pytest.raises(kind, match=message):
        call(mr.ones(2, 4))
