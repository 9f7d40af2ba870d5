"""A layer written for PyTorch (tests/torch_scripts/se_layer.py: a hand-written swish and a squeeze-excitation
block), taken through the import rewrite (tests/torch_scripts/rewritten/se_layer.py), gradient-checked by
mr.gradcheck in float64 with the minires.testing strategies, and its forward checked against NumPy."""
import importlib.util
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import minires as mr
from minires.testing import arrays, shapes, tensors

LAYER_FILE = Path(__file__).resolve().parents[1] / "torch_scripts" / "rewritten" / "se_layer.py"


@lru_cache(maxsize=None)
def layers():
    """The rewritten file as a module (loaded on first use, so a missing minires piece fails the test, not collection)."""
    spec = importlib.util.spec_from_file_location("se_layer_rewritten", LAYER_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def sigmoid(a):
    return 1 / (1 + np.exp(-a))


def se_block(channels, reduction, seed):
    """The rewritten SqueezeExcitation with seeded weights, in float64 (gradcheck's dtype)."""
    mr.manual_seed(seed)
    return layers().SqueezeExcitation(channels, reduction).double()


def se_forward_numpy(block, x):
    """Closed form: x * sigmoid(W2 swish(W1 mean_hw(x) + b1) + b2), the 1x1 convs as matrices."""
    w1, b1 = block.squeeze.weight.numpy()[:, :, 0, 0], block.squeeze.bias.numpy()  # (hidden, C), (hidden,)
    w2, b2 = block.excite.weight.numpy()[:, :, 0, 0], block.excite.bias.numpy()    # (C, hidden), (C,)
    s = x.mean(axis=(2, 3))                                                          # (N, C)
    h = s @ w1.T + b1
    g = sigmoid((h * sigmoid(h)) @ w2.T + b2)                                       # (N, C)
    return x * g[:, :, None, None]


NCHW = st.tuples(st.integers(1, 2), st.integers(1, 6), st.integers(1, 4), st.integers(1, 4))


@settings(deadline=None, max_examples=20)
@given(x=arrays(shapes(max_dims=4)))
def test_swish_forward_is_x_sigmoid_x(x):
    got = layers().Swish()(mr.tensor(x, dtype=mr.float64)).numpy()
    np.testing.assert_allclose(got, x / (1 + np.exp(-x)), rtol=1e-13, atol=1e-15)


@settings(deadline=None, max_examples=20)
@given(x=tensors(shapes(max_dims=3)))
def test_swish_gradcheck(x):
    assert mr.gradcheck(layers().Swish(), [x])


def test_se_block_state_dict_has_pytorch_names():
    block = se_block(8, 4, seed=0)
    assert {k: tuple(v.shape) for k, v in block.state_dict().items()} == {
        "squeeze.weight": (2, 8, 1, 1), "squeeze.bias": (2,), "excite.weight": (8, 2, 1, 1), "excite.bias": (8,)}
    assert all(p.dtype == np.float64 and p.requires_grad for p in block.parameters())


@settings(deadline=None, max_examples=15)
@given(x=arrays(NCHW, min_value=-3.0, max_value=3.0), reduction=st.integers(1, 4), seed=st.integers(0, 2**16))
def test_se_block_forward_against_numpy(x, reduction, seed):
    block = se_block(x.shape[1], reduction, seed)
    got = block(mr.tensor(x, dtype=mr.float64)).numpy()
    np.testing.assert_allclose(got, se_forward_numpy(block, x), rtol=1e-12, atol=1e-14)


@settings(deadline=None, max_examples=15)
@given(x=tensors(NCHW), reduction=st.integers(1, 4), seed=st.integers(0, 2**16))
def test_se_block_gradcheck_input_and_weights(x, reduction, seed):
    block = se_block(x.shape[1], reduction, seed)
    params = list(block.parameters())
    # gradcheck perturbs every input in place, the block's own parameters included
    assert mr.gradcheck(lambda x, *weights: block(x), [x, *params])


def test_the_check_catches_a_gate_cut_out_of_the_graph():
    """The same check on the block with its gate detached (a classic PyTorch bug) fails on the input."""
    block = se_block(4, 2, seed=0)

    def detached(x):
        s = block.act(block.squeeze(x.mean(dim=(2, 3), keepdim=True)))
        return x * mr.sigmoid(block.excite(s)).detach()

    x = mr.tensor(np.random.default_rng(0).standard_normal((2, 4, 3, 3)), dtype=mr.float64, requires_grad=True)
    np.testing.assert_allclose(detached(x).numpy(), block(x).numpy(), rtol=1e-13)  # same forward
    with pytest.raises(mr.GradcheckError, match="input 0"):
        mr.gradcheck(detached, [x])
