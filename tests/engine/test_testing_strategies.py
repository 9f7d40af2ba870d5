"""The strategies in minires.testing keep their promises: valid configs, bounds and margins."""
import numpy as np
from hypothesis import given
from hypothesis import strategies as st

import minires as mr
import minires.functional as F
from minires.testing import (arrays, away_from_zero, conv_configs, distinct_arrays, pool_configs, shapes,
                             tensors)


@given(cfg=conv_configs(max_size=9, max_kernel=4, max_stride=3, max_padding=3, max_dilation=3, max_groups=3))
def test_conv_configs_are_valid(cfg):
    N, O, OH, OW = cfg.output_shape
    assert OH >= 1 and OW >= 1
    assert cfg.C_in % cfg.groups == 0 and cfg.C_out % cfg.groups == 0
    x, w = mr.zeros(*cfg.input_shape, dtype=mr.float64), mr.zeros(*cfg.weight_shape, dtype=mr.float64)
    assert F.conv2d(x, w, **cfg.kwargs()).shape == (N, O, OH, OW)  # conv2d accepts it


@given(cfg=pool_configs(max_size=9, max_kernel=4))
def test_pool_configs_are_valid(cfg):
    (KH, KW), (PH, PW) = cfg.kernel_size, cfg.padding
    assert 2 * PH <= KH and 2 * PW <= KW
    assert min(cfg.output_shape[2:]) >= 1
    x = mr.zeros(*cfg.input_shape, dtype=mr.float64)
    assert F.max_pool2d(x, **cfg.kwargs()).shape == cfg.output_shape
    assert F.avg_pool2d(x, **cfg.kwargs()).shape == cfg.output_shape


@given(a=arrays(shapes(max_dims=3), np.float32, -0.5, 3.0))
def test_arrays_are_bounded_and_typed(a):
    assert a.dtype == np.float32 and 1 <= a.ndim <= 3
    assert np.isfinite(a).all() and (a >= -0.5).all() and (a <= 3.0).all()


@given(t=tensors(min_value=-1.0, max_value=1.0))
def test_tensors_are_float64_leaves_requiring_grad(t):
    assert isinstance(t, mr.Tensor) and t.dtype == np.float64 and t.requires_grad
    assert 1 <= t.ndim <= 4 and max(t.shape) <= 5 and (np.abs(t.numpy()) <= 1.0).all()


@given(a=away_from_zero((3, 4), margin=0.25, max_value=2.0))
def test_away_from_zero_keeps_margin(a):
    assert a.shape == (3, 4) and (np.abs(a) >= 0.25).all() and (np.abs(a) <= 2.0).all()


@given(a=distinct_arrays(st.sampled_from([(5,), (2, 3, 4), (1, 1, 3, 3)]), margin=0.05))
def test_distinct_arrays_keep_gaps(a):
    gaps = np.diff(np.sort(a.ravel()))
    assert (gaps >= 0.05 - 1e-12).all()
