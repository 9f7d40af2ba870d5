"""minires/kernels/registry.py: the one table of fast paths, and what dispatch is given from it."""
import inspect
import pathlib

import minires as mr
from minires import dispatch
from minires.functional.conv import Conv2d, ConvGeometry
from minires.kernels.cpu.conv import Conv2dCPU
from minires.kernels import cpu, cuda, registry
from minires.tensor import Function

ROOT = pathlib.Path(mr.__file__).parent


def _fast_classes():
    """Every Function subclass with a supports() defined in a module under minires/kernels/."""
    found = set()
    for package in (cpu, cuda):
        for name in package.__all__:
            module = getattr(package, name)
            for obj in vars(module).values():
                if (inspect.isclass(obj) and issubclass(obj, Function) and obj.__module__ == module.__name__
                        and "supports" in vars(obj)):
                    found.add(obj)
    return found


def test_the_table_lists_every_fast_path_once_under_its_op():
    listed = [cls for classes in registry.FAST.values() for cls in classes]
    assert len(listed) == len(set(listed))
    assert set(listed) == _fast_classes()
    for op, classes in registry.FAST.items():
        assert all(cls.op_name() == op for cls in classes), op


def test_dispatch_holds_exactly_the_installed_table():
    registry.install()  # a second install replaces, it does not append
    assert {op: tuple(dispatch.implementations(op)) for op in registry.FAST} == registry.FAST
    assert set(dispatch._others) == set(registry.FAST)


def test_the_reference_path_does_not_name_the_fast_paths():
    """dispatch.py and the reference functional/ files know other implementations only through install()."""
    for path in [ROOT / "dispatch.py", ROOT / "amp.py", ROOT / "functional" / "conv.py"]:
        text = path.read_text()
        for word in ("kernels", "keeps_float16", "mixed_float_dtypes", "Conv2dCPU", "CUDA"):
            assert word not in text, f"{path.name} names {word!r}"
    assert "mixed_float_dtypes" not in (ROOT / "tensor.py").read_text()  # the core takes one float dtype per op


def test_the_conv_implementations_keep_one_named_geometry():
    """The reference and the CPU fast path save the same ConvGeometry for backward."""
    x = mr.randn(2, 4, 5, 6, requires_grad=True)
    w = mr.randn(6, 2, 3, 3, requires_grad=True)
    params = dict(stride=(2, 1), padding=(1, 0), dilation=(1, 2), groups=2)
    geoms = [cls.apply(x, w, None, **params).grad_fn.geom for cls in (Conv2d, Conv2dCPU)]
    expected = ConvGeometry((2, 4, 5, 6), (6, 2, 3, 3), (2, 1), (1, 0), (1, 2), 2)
    assert all(type(g) is ConvGeometry and g == expected for g in geoms)
