"""minires.dispatch: one implementation per call, the reference switch, and autocast's policy table."""
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import minires as mr
from minires import amp, dispatch
from minires.tensor import Function


class Double(Function):
    """Test op: 2x; backward 2g. The fast path below computes the same, and records that it ran."""

    name = "test_double"
    input_names = ("input",)
    ran = []

    def forward(self, x):
        type(self).ran.append((type(self).__name__, x.dtype))
        return 2 * x

    def backward(self, g):
        return 2 * g


class DoubleFast(Double):
    @classmethod
    def supports(cls, x):
        return x.shape[0] > 1  # a fast path that takes only some calls


class DoubleHalfOnly(Double):
    @classmethod
    def supports(cls, x):
        return x.dtype == np.float16


@pytest.fixture
def registry(monkeypatch):
    """An empty table of other implementations for one test, so test ops never leak into the library's."""
    monkeypatch.setattr(dispatch, "_others", {})
    Double.ran = []
    with dispatch.use_impl("fast"):  # also under MINIRES_IMPL=reference
        yield dispatch._others


def test_call_runs_a_supporting_fast_path_else_the_reference(registry):
    dispatch.install({"test_double": [DoubleFast]})
    assert dispatch.implementations("test_double") == [DoubleFast]
    x = mr.tensor([1.0, 2.0])
    np.testing.assert_array_equal(dispatch.call(Double, x).numpy(), [2.0, 4.0])
    dispatch.call(Double, mr.tensor([3.0]))  # one row: DoubleFast declines
    assert [name for name, _ in Double.ran] == ["DoubleFast", "Double"]


def test_reference_switch_runs_every_call_on_the_reference(registry):
    dispatch.install({"test_double": [DoubleFast]})
    x = mr.tensor([1.0, 2.0], requires_grad=True)
    with dispatch.use_impl("reference"):
        assert dispatch.get_impl() == "reference"
        assert dispatch.choose(Double, (x,), {}) is Double
        dispatch.call(Double, x).sum().backward()
    assert dispatch.get_impl() == "fast"  # the registry fixture's choice, back after the block
    assert [name for name, _ in Double.ran] == ["Double"]
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 2.0])


def test_set_impl_is_global_until_set_back():
    previous = dispatch.get_impl()
    mr.set_impl("reference")
    try:
        assert dispatch.get_impl() == "reference"
        mr.set_impl("fast")
        assert dispatch.get_impl() == "fast"
    finally:
        mr.set_impl(previous)


@pytest.mark.parametrize("bad", ["fastest", "", None, 1])
def test_bad_impl_names_are_refused(bad):
    with pytest.raises(ValueError, match="set_impl: expected one of"):
        dispatch.set_impl(bad)


def test_the_environment_variable_selects_the_references():
    code = "import minires; print(minires.dispatch.get_impl())"
    env = dict(os.environ, MINIRES_IMPL="reference")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "reference"
    env["MINIRES_IMPL"] = "turbo"
    bad = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert bad.returncode != 0 and "MINIRES_IMPL must be one of" in bad.stderr


def test_install_refuses_what_is_not_an_implementation_and_replaces_the_table(registry):
    with pytest.raises(TypeError, match="install: op 'test_double' expects Function subclasses"):
        dispatch.install({"test_double": [object]})
    with pytest.raises(TypeError, match="supports"):
        dispatch.install({"test_double": [Double]})  # a Function without supports()
    assert dispatch.implementations("test_double") == []  # a refused table installs nothing
    dispatch.install({"test_double": [DoubleFast]})
    dispatch.install({"other": [DoubleFast]})
    assert dispatch.implementations("test_double") == [] and dispatch.implementations("other") == [DoubleFast]


def test_policy_float16_casts_float32_inputs_down_and_gradients_come_back_float32(registry, monkeypatch):
    monkeypatch.setitem(amp.POLICY, "test_double", "float16")
    x = mr.tensor([1.0, 2.0], requires_grad=True)
    with amp.autocast():
        y = dispatch.call(Double, x)
    assert y.dtype == np.float16 and Double.ran[-1][1] == np.float16
    y.sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 2.0])
    assert dispatch.call(Double, x).dtype == np.float32  # outside autocast: the dtype it gets


def test_policy_float32_widens_before_the_implementation_is_chosen(registry, monkeypatch):
    """One pass: autocast casts first, then supports() sees the cast arrays once; an implementation
    that takes only float16 is never chosen for a float32 op under autocast."""
    monkeypatch.setitem(amp.POLICY, "test_double", "float32")
    asked = []
    monkeypatch.setattr(DoubleHalfOnly, "supports", classmethod(lambda cls, x: asked.append(x.dtype) or
                                                                x.dtype == np.float16))
    dispatch.install({"test_double": [DoubleHalfOnly]})
    half = mr.tensor([1.0, 2.0], dtype=mr.float16)
    with amp.autocast():
        assert dispatch.call(Double, half).dtype == np.float32
    assert asked == [np.float32] and [name for name, _ in Double.ran] == ["Double"]
    assert dispatch.call(Double, half).dtype == np.float16  # outside autocast: taken as it is
    assert asked == [np.float32, np.float16] and [name for name, _ in Double.ran] == ["Double", "DoubleHalfOnly"]


def test_ops_outside_the_table_run_in_the_dtype_they_get(registry):
    half = mr.tensor([1.0], dtype=mr.float16)
    with amp.autocast():
        assert dispatch.call(Double, half).dtype == np.float16
        assert dispatch.call(Double, half.float()).dtype == np.float32


def test_every_installed_implementation_belongs_to_an_op_with_a_reference():
    """Each other implementation subclasses its op's reference Function and answers supports()."""
    assert dispatch._others, "the package installs its table at import"
    for op, classes in dispatch._others.items():
        for cls in classes:
            refs = [base for base in cls.__mro__[1:] if base is not Function and issubclass(base, Function)
                    and base.op_name() == op and "supports" not in vars(base)]
            assert refs, f"fast path {cls.__name__} of {op} does not subclass a reference Function of {op}"
            assert callable(cls.supports)


def test_use_impl_is_per_thread():
    seen = []
    with dispatch.use_impl("reference"):
        t = threading.Thread(target=lambda: seen.append(dispatch.get_impl()))
        t.start()
        t.join()
        assert dispatch.get_impl() == "reference"
    assert seen == [dispatch._impl or dispatch._default_impl()]  # the other thread kept the process-wide choice
    with pytest.raises(ValueError, match="use_impl: expected one of"):
        with dispatch.use_impl("turbo"):
            pass
