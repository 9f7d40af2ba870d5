"""Errors that say what their numbers and keys are: load_state_dict given a training checkpoint, and
gradcheck's values in fast mode and element by element."""
import re

import numpy as np
import pytest

import minires as mr
from minires import nn, optim
from minires.checkpoint import load_checkpoint, save_checkpoint


def trained(tmp_path):
    """A model after one SGD step with momentum, and its training checkpoint (weights + optimizer state)."""
    mr.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(mr.randn(5, 3)).sum().backward()
    opt.step()
    path = tmp_path / "last.safetensors"
    save_checkpoint(path, model, opt, epoch=1)
    return model, path


def test_load_state_dict_of_a_training_checkpoint_names_it_and_the_files_to_use(tmp_path):
    stn = pytest.importorskip("safetensors.numpy")
    model, path = trained(tmp_path)
    everything = stn.load_file(str(path))  # what safetensors' own reader gives: optimizer arrays included
    assert any(k.startswith("optimizer/state/") for k in everything)
    with pytest.raises(ValueError) as exc:  # StateDictError: a ValueError and a RuntimeError
        model.load_state_dict(everything)
    msg = str(exc.value)
    assert "This is a training checkpoint" in msg and "best.safetensors" in msg
    assert "minires.checkpoint.load_checkpoint(path, model)" in msg
    assert "momentum_buffer" not in msg and "Unexpected key(s)" not in msg
    everything["stray.weight"] = everything["0.weight"]  # another unexpected key is still listed
    with pytest.raises(ValueError, match=r'training checkpoint.*\n\tUnexpected key\(s\) in state_dict: "stray.weight"'):
        model.load_state_dict(everything)
    assert model.load_state_dict(mr.load(str(path))) == ([], [])  # the ways that work
    assert model.load_state_dict(load_checkpoint(str(path))["model"]) == ([], [])


def test_load_state_dict_of_load_checkpoints_dict_points_to_its_model_entry(tmp_path):
    model, path = trained(tmp_path)
    with pytest.raises(ValueError) as exc:
        model.load_state_dict(load_checkpoint(str(path)))
    msg = str(exc.value)
    assert "This is a checkpoint dict" in msg and "load_state_dict(ckpt['model'])" in msg
    assert "Missing key(s)" not in msg and msg.count("\n") == 1


def test_a_plain_unexpected_key_is_still_listed_as_pytorch_does():
    model = nn.Linear(2, 2)
    with pytest.raises(ValueError, match=r'Unexpected key\(s\) in state_dict: "extra"') as exc:
        model.load_state_dict({**model.state_dict(), "extra": mr.zeros(1)})
    assert "training checkpoint" not in str(exc.value)


def _half_grad(x):
    """3 * x * x with only half of its gradient: d/dx is 6x, autograd gives 3x."""
    return x * x.detach() * 3


def test_gradcheck_element_wise_gives_the_derivative_by_hand_for_a_scalar_output():
    x = mr.tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    with pytest.raises(mr.GradcheckError) as exc:
        mr.gradcheck(lambda t: _half_grad(t).sum(), (x,))
    # the worst element is the last: 6 * 3 = 18 by finite differences, 3 * 3 = 9 by autograd
    assert "element (2,): the derivative of the output by this element is numeric 18 vs analytic 9 " in str(exc.value)


@pytest.mark.parametrize("scalar", [True, False])
def test_gradcheck_fast_mode_says_its_values_are_directional_derivatives(scalar):
    x = mr.tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    with pytest.raises(mr.GradcheckError) as exc:
        mr.gradcheck(lambda t: _half_grad(t).sum() if scalar else _half_grad(t), (x,), fast_mode=True)
    msg = str(exc.value)
    assert "fast_mode: along random direction 1 of 3" in msg
    assert "are directional derivatives" in msg and "not per-element values" in msg
    assert "gradcheck(..., fast_mode=False) checks each element" in msg
    assert ("the derivative of the output" in msg) == scalar and ("v: fixed random weights" in msg) != scalar
    numeric, analytic = (float(v) for v in re.search(r"numeric (\S+) vs analytic (\S+)\.", msg).groups())
    assert numeric == pytest.approx(2 * analytic, rel=1e-6)  # the true derivative is twice autograd's here
