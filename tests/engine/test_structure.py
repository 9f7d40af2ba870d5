"""The package's shape, read from the source (nothing is imported): no import circles between minires
modules, no imports inside functions except of optional dependencies, and no .py file over 400 lines.

Import edges, as Python runs them:
- `from .x import name` / `import minires.x` depend on module minires.x; `from . import name` depends on
  the package's __init__ when `name` is not a submodule;
- importing minires.a.b also runs the package minires.a (its __init__) first, unless minires.a is an
  ancestor of the importing module (already running when the importer runs);
- imports inside functions count too (they form circles all the same, only later), and imports
  under `if TYPE_CHECKING:` do not (they never run).
"""
from __future__ import annotations

import ast
import re
from collections import deque
from pathlib import Path

import pytest

PACKAGE_DIR = Path(__file__).resolve().parents[2] / "minires"
# Imported inside functions only when used, so that minires runs without them.
OPTIONAL = {"cupy", "threadpoolctl", "PIL", "matplotlib", "safetensors", "tqdm", "torch", "mpi4py", "onnx", "onnxruntime"}
MAX_LINES = 400


# ---- reading the package --------------------------------------------------------------------------

def modules(package_dir: Path) -> dict[str, Path]:
    """Dotted module name -> path, for every .py file under package_dir (a package's name for its __init__)."""
    found = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = list(path.relative_to(package_dir.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _is_type_checking(node) -> bool:
    test = node.test
    return isinstance(node, ast.If) and (getattr(test, "id", None) == "TYPE_CHECKING"
                                         or getattr(test, "attr", None) == "TYPE_CHECKING")


def import_nodes(tree):
    """(import node, name of the enclosing function or None) for every import that can run."""
    def visit(node, function):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for sub in child.orelse:
                    yield from visit(sub, function)
                continue
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                yield child, function
            inner = child.name if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else (
                "<lambda>" if isinstance(child, ast.Lambda) else None)
            yield from visit(child, function or inner)
    yield from visit(tree, None)


def targets(module: str, is_package: bool, node, known) -> set[str]:
    """The modules of the package that running `node` (in `module`) imports, parent packages included."""
    root = next(iter(known)).split(".")[0]
    if isinstance(node, ast.Import):
        named = {alias.name for alias in node.names}
    else:
        if node.level:
            base = module if is_package else module.rpartition(".")[0]
            for _ in range(node.level - 1):
                base = base.rpartition(".")[0]
            base = f"{base}.{node.module}" if node.module else base
        else:
            base = node.module
        subs = {f"{base}.{alias.name}" for alias in node.names}
        named = {s for s in subs if s in known} | ({base} if any(s not in known for s in subs) else set())
    out = set()
    ancestors = {module.rsplit(".", k)[0] for k in range(1, module.count(".") + 1)} | (
        {module} if is_package else set())
    for name in named:
        if name.split(".")[0] != root:
            continue
        out.add(name)
        parts = name.split(".")
        out |= {".".join(parts[:k]) for k in range(1, len(parts))} - ancestors
    return {t for t in out if t in known and t != module}


def import_graph(package_dir: Path):
    """module -> {imported module: "path:line" of the first import statement that does it}."""
    known = modules(package_dir)
    graph = {m: {} for m in known}
    for module, path in known.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node, _ in import_nodes(tree):
            for target in targets(module, path.name == "__init__.py", node, known):
                graph[module].setdefault(target, f"{path.relative_to(package_dir.parent)}:{node.lineno}")
    return graph


def circles(graph) -> list[list[str]]:
    """One shortest cycle per group of modules that import each other, directly or through others."""
    reach = {}
    for start in graph:
        seen, todo = set(), [start]
        while todo:
            for nxt in graph[todo.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        reach[start] = seen
    found, done = [], set()
    for start in sorted(graph):
        if start in done or start not in reach[start]:
            continue
        group = {m for m in graph if m in reach[start] and start in reach[m]}
        done |= group
        previous, queue = {start: None}, deque([start])  # breadth first: the shortest way back to start
        while queue:
            m = queue.popleft()
            if start in graph[m]:
                path = [m]
                while previous[path[-1]] is not None:
                    path.append(previous[path[-1]])
                found.append([start] + path[::-1][1:] + [start] if len(path) > 1 else [start, start])
                break
            for nxt in sorted(graph[m]):
                if nxt in group and nxt not in previous:
                    previous[nxt] = m
                    queue.append(nxt)
    return found


def describe(cycle, graph) -> str:
    steps = [f"{a} -> {b} ({graph[a][b]})" for a, b in zip(cycle, cycle[1:])]
    return "\n    ".join(steps)


def imports_inside_functions(package_dir: Path) -> list[str]:
    """"path:line in f(): statement" for every import inside a function that is not an optional dependency."""
    bad = []
    for path in modules(package_dir).values():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node, function in import_nodes(tree):
            if function is None:
                continue
            if isinstance(node, ast.Import):
                tops = {alias.name.split(".")[0] for alias in node.names}
            else:
                tops = {node.module.split(".")[0]} if node.level == 0 else {"<relative>"}
            if not tops <= OPTIONAL:
                bad.append(f"{path.relative_to(package_dir.parent)}:{node.lineno} in {function}(): {ast.unparse(node)}")
    return bad


def long_files(package_dir: Path) -> list[str]:
    return [f"{path.relative_to(package_dir.parent)}: {n} lines" for path in modules(package_dir).values()
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES]


# ---- the package ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def graph():
    return import_graph(PACKAGE_DIR)


def test_no_import_circles(graph):
    found = circles(graph)
    assert not found, (f"{len(found)} import circle(s); a module must import only what sits below it:\n  "
                       + "\n  ".join(describe(c, graph) for c in found))


def test_no_imports_inside_functions_but_optional_dependencies():
    bad = imports_inside_functions(PACKAGE_DIR)
    assert not bad, (f"{len(bad)} import(s) inside functions; import at the top of the module (only "
                     f"{', '.join(sorted(OPTIONAL))} may be imported where used):\n  " + "\n  ".join(bad))


def test_no_file_over_400_lines():
    bad = long_files(PACKAGE_DIR)
    assert not bad, f"files over {MAX_LINES} lines:\n  " + "\n  ".join(bad)


def test_tensor_sits_at_the_bottom(graph):
    # Tensor, Function and the backward walk import nothing of the package above the backend and the
    # grad-mode switch: their operators are bound from minires.ops and minires/__init__, which import
    # tensor, never the reverse.
    assert set(graph["minires.tensor"]) <= {"minires.backend", "minires.grad_mode"}, graph["minires.tensor"]
    assert not graph["minires.grad_mode"], graph["minires.grad_mode"]


def test_operators_are_bound_once_from_the_methods_table():
    import minires as mr
    from minires import methods

    tree = ast.parse((PACKAGE_DIR / "tensor.py").read_text(encoding="utf-8"))
    tensor_class = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Tensor")
    defined = {n.name for n in tensor_class.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    assert not defined & set(methods.METHODS), "defined in Tensor's body and bound from minires.methods"
    for name, method in methods.METHODS.items():
        assert mr.Tensor.__dict__[name] is method, name
    # nothing else binds onto Tensor: no `Tensor.x = ...` or setattr(Tensor, ...) outside minires/methods.py
    for path in PACKAGE_DIR.rglob("*.py"):
        if path.name == "methods.py" and path.parent == PACKAGE_DIR:
            continue
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"^\s*Tensor\.\w+(\s*,\s*Tensor\.\w+)*\s*=|setattr\(Tensor,", text, re.M), path


# ---- the checks themselves, on small packages -----------------------------------------------------

def _package(tmp_path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / "pkg" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path / "pkg"


def test_a_circle_through_a_function_import_is_found(tmp_path):
    pkg = _package(tmp_path, {"__init__.py": "from . import a\n", "a.py": "from .b import f\n",
                              "b.py": "def f():\n    from .a import g\n", "c.py": "from . import a\n"})
    graph = import_graph(pkg)
    assert circles(graph) == [["pkg.a", "pkg.b", "pkg.a"]]
    assert "pkg/b.py:2" in describe(circles(graph)[0], graph)
    assert imports_inside_functions(pkg) == ["pkg/b.py:2 in f(): from .a import g"]


def test_a_circle_through_a_package_init_is_found(tmp_path):
    # pkg.low imports pkg.sub.util: that runs pkg/sub/__init__.py, which imports pkg.sub.high -> pkg.low
    pkg = _package(tmp_path, {"__init__.py": "", "low.py": "from .sub.util import u\n",
                              "sub/__init__.py": "from . import high, util\n", "sub/util.py": "u = 1\n",
                              "sub/high.py": "from ..low import x\n"})
    found = circles(import_graph(pkg))
    assert len(found) == 1 and set(found[0]) == {"pkg.low", "pkg.sub", "pkg.sub.high"}


def test_a_module_importing_from_its_own_packages_is_no_circle(tmp_path):
    pkg = _package(tmp_path, {"__init__.py": "from .sub import mod\nfrom . import base\n", "base.py": "X = 1\n",
                              "sub/__init__.py": "from . import mod\n",
                              "sub/mod.py": "from .. import base\nfrom ..base import X\n"})
    assert circles(import_graph(pkg)) == []


def test_optional_dependencies_and_type_checking_imports_are_allowed(tmp_path):
    pkg = _package(tmp_path, {"__init__.py": "from . import a\n",
                              "a.py": ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import b\n"
                                       "def f():\n    import cupy\n    from tqdm import tqdm\n"
                                       "def g():\n    import numpy\n    h = lambda: __import__('x')\n"),
                              "b.py": "from . import a\n" + "x = 1\n" * MAX_LINES})
    assert circles(import_graph(pkg)) == []
    assert imports_inside_functions(pkg) == ["pkg/a.py:8 in g(): import numpy"]
    assert long_files(pkg) == [f"pkg/b.py: {MAX_LINES + 1} lines"]


@pytest.mark.parametrize("statement, expected", [
    ("import pkg.sub.mod", {"pkg.sub", "pkg.sub.mod"}),
    ("from .sub import mod", {"pkg.sub", "pkg.sub.mod"}),
    ("from .sub.mod import name", {"pkg.sub", "pkg.sub.mod"}),
    ("from . import sub", {"pkg.sub"}),
    ("from . import name_in_init", {"pkg"}),
    ("import numpy", set()),
])
def test_import_targets(statement, expected):
    known = {"pkg": None, "pkg.low": None, "pkg.sub": None, "pkg.sub.mod": None}
    node = ast.parse(statement).body[0]
    assert targets("pkg.low", False, node, known) == expected - {"pkg.low"}
