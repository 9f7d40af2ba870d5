"""Shared by the ONNX export tests: random batch-norm state, export to bytes, ONNX Runtime runs, the error measure."""
import io

import numpy as np

import minires as mr
import minires.onnx as mronnx
from minires import nn

TOL = 1e-5  # issue 22's target: max abs diff / max abs value


def randomize(model, seed=0):
    """Random batch-norm statistics and affine parameters (in place); returns the model."""
    rng = np.random.default_rng(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            C = m.num_features
            m.running_mean.array[...] = rng.normal(0, 0.2, C)
            m.running_var.array[...] = rng.uniform(0.5, 1.5, C)
            if m.weight is not None:
                m.weight.array[...] = rng.uniform(0.5, 1.5, C)
                m.bias.array[...] = rng.normal(0, 0.2, C)
    return model


def to_bytes(model, x, **kw):
    buf = io.BytesIO()
    mronnx.export(model, x, buf, **kw)
    return buf.getvalue()


def ort_run(blob, *xs):
    import onnxruntime as ort  # the calling test module skips without it
    session = ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
    feeds = {i.name: np.ascontiguousarray(x) for i, x in zip(session.get_inputs(), xs)}
    return session.run(None, feeds)


def relative(got, want):
    return float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-30))


def minires_out(model, x):
    with mr.no_grad():
        return model.eval()(mr.tensor(x)).numpy()
