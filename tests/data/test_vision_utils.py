"""minires.vision.utils (make_grid, save_image) against hand-built grids; models' names; missing torchvision names."""
import io
import os

import numpy as np
import pytest

import minires as mr
import minires.vision.transforms as T
import minires.vision.transforms.functional as TF
from minires.vision import models, utils

Image = pytest.importorskip("PIL.Image")


def images(n, c=3, h=4, w=5, seed=0):
    return np.random.default_rng(seed).random((n, c, h, w)).astype(np.float32)


def test_make_grid_layout_by_hand():
    x = images(5)
    grid = utils.make_grid(mr.Tensor(x), nrow=3, padding=2, pad_value=0.5).array
    ref = np.full((3, 2 * (4 + 2) + 2, 3 * (5 + 2) + 2), 0.5, dtype=np.float32)  # 2 rows of 3 cells
    for k in range(5):
        r, c = divmod(k, 3)
        ref[:, 2 + r * 6:2 + r * 6 + 4, 2 + c * 7:2 + c * 7 + 5] = x[k]
    assert grid.shape == ref.shape and np.array_equal(grid, ref)
    listed = utils.make_grid([mr.Tensor(v) for v in x], nrow=3, padding=2, pad_value=0.5).array
    assert np.array_equal(listed, ref)
    assert utils.make_grid(mr.Tensor(x), nrow=8, padding=0).shape == (3, 4, 25)  # one row when nrow > n


def test_make_grid_channels_normalize_and_single_image():
    x = images(2, c=1)
    grid = utils.make_grid(mr.Tensor(x), padding=1).array
    assert grid.shape == (3, 6, 13) and np.array_equal(grid[0], grid[2])  # 1 channel -> 3
    assert np.array_equal(grid[1, 1:5, 1:6], x[0, 0])
    single = utils.make_grid(mr.Tensor(images(1)[0]), padding=2).array
    assert np.array_equal(single, images(1)[0])  # a single image comes back as it is, unpadded
    y = images(2) * 4 - 1  # values in [-1, 3)
    lo, hi = y.min(), y.max()
    norm = utils.make_grid(mr.Tensor(y), padding=0, normalize=True).array
    np.testing.assert_allclose(norm, np.concatenate([(y[0] - lo) / (hi - lo), (y[1] - lo) / (hi - lo)], axis=2),
                               rtol=1e-6)
    ranged = utils.make_grid(mr.Tensor(y), padding=0, normalize=True, value_range=(0, 2)).array
    np.testing.assert_allclose(ranged, np.concatenate(list(np.clip(y, 0, 2) / 2), axis=2), rtol=1e-6)
    each = utils.make_grid(mr.Tensor(y), padding=0, normalize=True, scale_each=True).array
    ref = [(v - v.min()) / (v.max() - v.min()) for v in y]
    np.testing.assert_allclose(each, np.concatenate(ref, axis=2), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=r"make_grid: expected a tensor of 2, 3 or 4 dimensions.*\(1, 2, 3, 4, 5\)"):
        utils.make_grid(mr.zeros(1, 2, 3, 4, 5))


def test_save_image_writes_the_grid_as_bytes(tmp_path):
    x = images(3)
    path = tmp_path / "grid.png"
    utils.save_image(mr.Tensor(x), str(path), nrow=2, padding=1)
    got = np.asarray(Image.open(path))
    grid = utils.make_grid(mr.Tensor(x), nrow=2, padding=1).array
    assert np.array_equal(got, np.clip(grid * 255 + 0.5, 0, 255).astype(np.uint8).transpose(1, 2, 0))
    assert sorted(os.listdir(tmp_path)) == ["grid.png"]  # no temporary file left behind
    buf = io.BytesIO()
    utils.save_image(mr.Tensor(x[0]), buf, format="PNG")
    assert Image.open(io.BytesIO(buf.getvalue())).size == (5, 4)


def test_save_image_bad_paths(tmp_path):
    with pytest.raises(ValueError, match="save_image: fp must be a file name, got the folder"):
        utils.save_image(mr.zeros(3, 4, 4), tmp_path)
    with pytest.raises(ValueError, match=r"save_image: unknown image extension '\.xyz'.*\.png"):
        utils.save_image(mr.zeros(3, 4, 4), tmp_path / "a.xyz")
    with pytest.raises(ValueError, match="save_image: fp is a file object without a name: pass format="):
        utils.save_image(mr.zeros(3, 4, 4), io.BytesIO())
    assert os.listdir(tmp_path) == []


# ---- models ------------------------------------------------------------------------------------

def test_resnet_constructors_map_onto_minires_models():
    mr.manual_seed(0)
    net = models.resnet18(num_classes=10)
    assert type(net) is mr.models.ResNet and isinstance(net.layer1[0], mr.models.BasicBlock)
    keys = list(net.state_dict())  # torchvision's state_dict names
    assert keys[:2] == ["conv1.weight", "bn1.weight"] and keys[-3:] == [
        "layer4.1.bn2.num_batches_tracked", "fc.weight", "fc.bias"]
    assert sum(p.numel() for p in net.parameters()) == 11_181_642  # torchvision's 11,689,512 with a 10-class fc
    assert net.eval()(mr.randn(1, 3, 32, 32)).shape == (1, 10)


@pytest.mark.parametrize("name", ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152"])
def test_pretrained_weights_are_one_clear_error(name):
    build = getattr(models, name)
    for kwargs in ({"pretrained": True}, {"weights": "DEFAULT"}, {"weights": models.ResNet18_Weights.DEFAULT}):
        with pytest.raises(ValueError, match=rf"{name}: minires ships no pretrained weights.*"
                                             rf"model.load_state_dict\(minires.load\(path\)\)"):
            build(**kwargs)


def test_a_missing_torchvision_name_is_named():
    with pytest.raises(AttributeError, match=r"minires does not provide torchvision\.transforms\.AutoAugment"):
        T.AutoAugment
    with pytest.raises(ImportError, match=r"minires does not provide torchvision\.transforms\.v2"):
        import minires.vision.transforms.v2  # noqa: F401


# ---- review fixes in transforms: dtype conversion and errors named after the call -------------------

def test_convert_image_dtype_from_float16_and_unsafe_casts():
    values = np.array([0.0, 0.25, 0.5, 1.0])
    expected = np.floor(values * (255 + 1 - 1e-3)).astype(np.uint8)  # [0, 63, 127, 255]
    for dtype in (np.float16, np.float32, np.float64):
        out = TF.convert_image_dtype(mr.tensor(values.astype(dtype).reshape(1, 1, 4)), np.uint8)
        assert out.array.reshape(-1).tolist() == expected.tolist()  # float16 sent 1.0 to 0 (255.999 -> 256)
    for src, dst in ((np.float32, np.int32), (np.float32, np.int64), (np.float64, np.int64)):
        with pytest.raises(RuntimeError, match=f"convert_image_dtype: the cast from {np.dtype(src)} to "
                                               f"{np.dtype(dst)} cannot be performed safely"):
            T.ConvertImageDtype(dst)(mr.tensor(np.ones((1, 1, 1), dtype=src)))


def test_pad_fill_and_to_pil_image_errors_name_the_call():
    with pytest.raises(ValueError, match="pad: fill has 2 values but the image has 3 channels"):
        TF.pad(Image.new("RGB", (4, 4)), 1, fill=(1, 2))
    with pytest.raises(TypeError, match=r"to_pil_image: Pillow has no image mode for 5 channel\(s\) of dtype uint8"):
        TF.to_pil_image(mr.tensor(np.zeros((5, 2, 2), dtype=np.uint8)))
    with pytest.raises(TypeError, match=r"to_pil_image: .* 3 channel\(s\) of dtype int64 \(image shape \(3, 2, 2\)\)"):
        TF.to_pil_image(mr.tensor(np.zeros((3, 2, 2), dtype=np.int64)))
