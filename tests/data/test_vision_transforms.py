"""minires.vision.transforms against closed forms, NumPy and Pillow, on PIL images and on tensors."""
import colorsys

import numpy as np
import pytest

import minires as mr
import minires.vision.transforms as T
import minires.vision.transforms.functional as TF

Image = pytest.importorskip("PIL.Image")

H, W = 10, 13


@pytest.fixture
def rgb():
    return np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)  # (H, W, C)


@pytest.fixture
def pil(rgb):
    return Image.fromarray(rgb)


def chw(a):
    return a.transpose(2, 0, 1)


def as_array(img):
    """(C, H, W) float in [0, 1] of a PIL image or a tensor."""
    if isinstance(img, mr.Tensor):
        return img.array.astype(np.float64) / (255.0 if img.dtype == np.uint8 else 1.0)
    return chw(np.asarray(img).reshape(img.size[1], img.size[0], -1)).astype(np.float64) / 255.0


# ---- conversions -------------------------------------------------------------------------------

def test_to_tensor_is_division_by_255(rgb, pil):
    for pic in (pil, rgb):
        t = T.ToTensor()(pic)
        assert isinstance(t, mr.Tensor) and t.dtype == np.float32 and t.shape == (3, H, W)
        np.testing.assert_array_equal(t.array, chw(rgb).astype(np.float32) / np.float32(255))
    gray = T.ToTensor()(pil.convert("L"))
    assert gray.shape == (1, H, W)
    np.testing.assert_array_equal(gray.array[0], np.asarray(pil.convert("L")).astype(np.float32) / 255)
    floats = rgb.astype(np.float64) / 7.0  # non-uint8 arrays keep their values and dtype, as torchvision
    np.testing.assert_array_equal(T.ToTensor()(floats).array, chw(floats))


def test_pil_to_tensor_and_convert_image_dtype(rgb, pil):
    u = T.PILToTensor()(pil)
    assert u.dtype == np.uint8 and u.shape == (3, H, W)
    np.testing.assert_array_equal(u.array, chw(rgb))
    u.array[0, 0, 0] = 7  # a writable copy, not Pillow's buffer
    f = T.ConvertImageDtype(mr.float32)(u)
    np.testing.assert_allclose(f.array, u.array.astype(np.float32) / 255, rtol=1e-7)
    back = TF.convert_image_dtype(mr.tensor([[[0.0, 0.5, 1.0]]]), np.uint8)
    assert back.array.tolist() == [[[0, 127, 255]]]  # floor(v * (255 + 1 - 1e-3))
    assert np.array_equal(np.asarray(TF.to_pil_image(TF.pil_to_tensor(pil))), rgb)
    assert np.array_equal(np.asarray(T.ToPILImage()(rgb)), rgb)


def test_normalize_matches_the_formula(rgb):
    x = T.ToTensor()(rgb)
    mean, std = (0.1, 0.5, 0.9), (0.2, 0.3, 0.4)
    ref = np.empty((3, H, W))
    for c in range(3):
        ref[c] = (x.array[c].astype(np.float64) - mean[c]) / std[c]
    out = T.Normalize(mean, std)(x)
    np.testing.assert_allclose(out.array, ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(TF.normalize(x, mean, std).array, ref, rtol=1e-5, atol=1e-6)
    y = mr.Tensor(x.array.copy())
    assert T.Normalize(mean, std, inplace=True)(y) is y
    np.testing.assert_allclose(y.array, ref, rtol=1e-5, atol=1e-6)


def test_normalize_bad_input(rgb, pil):
    x = T.ToTensor()(rgb)
    with pytest.raises(ValueError, match=r"Normalize: mean has 2 values but the image has 3 channels.*\(3, 10, 13\)"):
        T.Normalize((0.5, 0.5), (1, 1, 1))(x)
    with pytest.raises(ValueError, match="Normalize: std evaluated to zero"):
        T.Normalize((0.5,) * 3, (1, 0, 1))
    with pytest.raises(TypeError, match="Normalize: expected a float tensor"):
        T.Normalize((0.5,) * 3, (1,) * 3)(T.PILToTensor()(pil))
    with pytest.raises(TypeError, match="Normalize: expected a Tensor"):
        T.Normalize((0.5,) * 3, (1,) * 3)(pil)


# ---- geometry ----------------------------------------------------------------------------------

def test_flips_are_slicing(rgb, pil):
    t = TF.pil_to_tensor(pil)
    assert np.array_equal(np.asarray(TF.hflip(pil)), rgb[:, ::-1])
    assert np.array_equal(np.asarray(TF.vflip(pil)), rgb[::-1])
    assert np.array_equal(TF.hflip(t).array, chw(rgb)[:, :, ::-1])
    assert np.array_equal(TF.vflip(t).array, chw(rgb)[:, ::-1])
    assert np.array_equal(np.asarray(T.RandomHorizontalFlip(p=1.0)(pil)), rgb[:, ::-1])
    assert T.RandomHorizontalFlip(p=0.0)(pil) is pil and T.RandomVerticalFlip(p=0.0)(t) is t


def test_random_horizontal_flip_follows_the_global_generator(pil, rgb):
    flip = T.RandomHorizontalFlip(p=0.5)  # made before the seed: the generator is looked up at each call
    mr.manual_seed(11)
    got = [np.array_equal(np.asarray(flip(pil)), rgb[:, ::-1]) for _ in range(20)]
    draws = np.random.default_rng(11).random(20)
    assert got == list(draws < 0.5) and 0 < sum(got) < 20


@pytest.mark.parametrize("mode", ["constant", "edge", "reflect", "symmetric"])
def test_pad_matches_np_pad(rgb, pil, mode):
    widths = ((2, 0), (1, 3))  # (top, bottom), (left, right) for padding [left=1, top=2, right=3, bottom=0]
    ref = np.pad(rgb, widths + ((0, 0),), mode=mode)
    assert np.array_equal(np.asarray(TF.pad(pil, [1, 2, 3, 0], padding_mode=mode)), ref)
    assert np.array_equal(TF.pad(TF.pil_to_tensor(pil), [1, 2, 3, 0], padding_mode=mode).array, chw(ref))
    two = np.pad(rgb, ((3, 3), (2, 2), (0, 0)), mode=mode)  # [left/right, top/bottom]
    assert np.array_equal(np.asarray(T.Pad([2, 3], padding_mode=mode)(pil)), two)


def test_pad_fill_per_channel(pil, rgb):
    out = np.asarray(TF.pad(pil, 2, fill=(10, 20, 30)))
    t = TF.pad(TF.pil_to_tensor(pil), 2, fill=(10, 20, 30)).array
    for c, v in enumerate((10, 20, 30)):
        assert (out[:2, :, c] == v).all() and (out[:, -2:, c] == v).all() and (t[c, :, :2] == v).all()
    assert np.array_equal(out[2:-2, 2:-2], rgb)


@pytest.mark.parametrize("mode,fill", [("constant", 0), ("constant", 9), ("reflect", 0), ("edge", 0)])
def test_random_crop_offsets_are_the_drawn_values(rgb, pil, mode, fill):
    crop = T.RandomCrop((8, 11), padding=3, fill=fill, padding_mode=mode)
    extra = {"constant_values": fill} if mode == "constant" else {}
    padded = np.pad(rgb, ((3, 3), (3, 3), (0, 0)), mode=mode, **extra)
    for seed in range(4):
        mr.manual_seed(seed)
        out_pil, out_t = np.asarray(crop(pil)), crop(TF.pil_to_tensor(pil)).array
        rng = np.random.default_rng(seed)
        i, j = rng.integers(0, H + 6 - 8 + 1), rng.integers(0, W + 6 - 11 + 1)
        assert np.array_equal(out_pil, padded[i:i + 8, j:j + 11])
        i, j = rng.integers(0, H + 6 - 8 + 1), rng.integers(0, W + 6 - 11 + 1)
        assert np.array_equal(out_t, chw(padded[i:i + 8, j:j + 11]))


def test_random_crop_pad_if_needed_and_errors(pil):
    out = T.RandomCrop((12, 16), pad_if_needed=True)(pil)
    assert out.size == (16, 12)
    with pytest.raises(ValueError, match=r"RandomCrop: required crop size \(12, 16\) is larger than the input "
                                         r"image size \(10, 13\)"):
        T.RandomCrop((12, 16))(pil)
    with pytest.raises(ValueError, match=r"RandomCrop.*\(40, 40\).*padded.*\(18, 21\)"):
        T.RandomCrop(40, padding=4)(pil)
    with pytest.raises(ValueError, match="RandomCrop: size must be positive"):
        T.RandomCrop(-3)
    with pytest.raises(ValueError, match="RandomCrop: padding must be non-negative"):
        T.RandomCrop(8, padding=-1)
    with pytest.raises(ValueError, match="RandomCrop: padding_mode"):
        T.RandomCrop(8, padding=1, padding_mode="wrap")
    with pytest.raises(TypeError, match="RandomCrop: img should be a PIL Image or a Tensor, got ndarray"):
        T.RandomCrop(8, padding=2)(np.zeros((10, 10, 3)))
    with pytest.raises(TypeError, match="RandomCrop: img should be a PIL Image or a Tensor, got ndarray"):
        T.RandomCrop(8, padding_mode="edge", padding=1)(np.zeros((10, 10, 3)))
    with pytest.raises(TypeError, match="hflip: img should be a PIL Image or a Tensor, got list"):
        T.RandomHorizontalFlip(p=1.0)([[1]])


def test_center_crop_offsets_and_padding(rgb, pil):
    top, left = int(round((H - 5) / 2)), int(round((W - 6) / 2))
    assert np.array_equal(np.asarray(T.CenterCrop((5, 6))(pil)), rgb[top:top + 5, left:left + 6])
    assert np.array_equal(T.CenterCrop((5, 6))(TF.pil_to_tensor(pil)).array, chw(rgb)[:, top:top + 5, left:left + 6])
    big = T.CenterCrop((14, 15))(TF.pil_to_tensor(pil)).array  # larger than the image: zeros around it
    assert np.array_equal(big[:, 2:12, 1:14], chw(rgb)) and big[:, :2].sum() == 0 and big[:, :, 14:].sum() == 0
    assert np.array_equal(np.asarray(T.CenterCrop((14, 15))(pil)), big.transpose(1, 2, 0))


# ---- resize ------------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", [T.InterpolationMode.BILINEAR, T.InterpolationMode.BICUBIC,
                                  T.InterpolationMode.NEAREST])
@pytest.mark.parametrize("size", [(4, 5), (23, 31), (10, 6)])
def test_resize_of_a_constant_image_stays_constant(mode, size):
    t = mr.Tensor(np.full((3, H, W), 0.25, dtype=np.float32))
    for antialias in (True, False):
        np.testing.assert_allclose(T.Resize(size, mode, antialias=antialias)(t).array, 0.25, rtol=1e-6)
    img = Image.fromarray(np.full((H, W, 3), 77, dtype=np.uint8))
    assert (np.asarray(T.Resize(size, mode)(img)) == 77).all()


@pytest.mark.parametrize("mode,pil_mode", [("bilinear", 2), ("bicubic", 3)])
@pytest.mark.parametrize("size", [(4, 5), (23, 31), (7, 20)])
def test_resize_of_a_ramp_matches_pillow(mode, pil_mode, size):
    yy, xx = np.mgrid[0:H, 0:W]
    ramp = (0.3 * yy + 0.7 * xx + 0.1 * yy * xx).astype(np.float32)  # (H, W), not separable-trivial
    ref = np.asarray(Image.fromarray(ramp, mode="F").resize((size[1], size[0]), pil_mode))
    out = TF.resize(mr.Tensor(ramp[None]), size, mode, antialias=True).array[0]
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4)


def test_resize_without_antialias_halving_is_the_block_mean(rgb):
    x = chw(rgb).astype(np.float64)[:, :H, :12]
    out = TF.resize(mr.Tensor(x), (H // 2, 6), antialias=False).array
    np.testing.assert_allclose(out, x.reshape(3, H // 2, 2, 6, 2).mean(axis=(2, 4)), rtol=1e-12)


def test_resize_int_matches_the_shorter_edge(pil):
    assert T.Resize(5)(pil).size == (int(5 * W / H), 5)  # (w, h): the shorter edge H becomes 5
    assert T.Resize(8, max_size=9)(pil).size == (9, int(9 * 8 / int(8 * W / H)))  # the longer edge capped at 9
    t = T.Resize(20)(TF.to_tensor(pil))
    assert t.shape == (3, 20, int(20 * W / H))
    u8 = T.Resize((6, 7))(TF.pil_to_tensor(pil))
    assert u8.dtype == np.uint8 and u8.shape == (3, 6, 7)
    ref = TF.resize(TF.to_tensor(pil), (6, 7)).array * 255
    assert np.abs(u8.array - ref).max() <= 0.5 + 1e-3  # uint8: the float result, rounded
    assert np.abs(as_array(T.Resize((6, 7))(pil)) - ref / 255).max() <= 1.5 / 255  # Pillow's fixed point
    with pytest.raises(ValueError, match="Resize: size must be positive"):
        T.Resize(-2)
    with pytest.raises(ValueError, match="resize: max_size = 4 must be larger than the requested size 5"):
        T.Resize(5, max_size=4)(pil)


def test_random_resized_crop_size_area_and_aspect_bounds(pil):
    scale, ratio = (0.2, 0.7), (0.5, 2.0)
    area = H * W
    for seed in range(40):
        mr.manual_seed(seed)
        top, left, h, w = T.RandomResizedCrop.get_params(pil, scale, ratio)
        assert 0 <= top <= H - h and 0 <= left <= W - w and 0 < h <= H and 0 < w <= W
        # w = round(sqrt(A * r)), h = round(sqrt(A / r)) for the drawn area A and aspect ratio r
        fits_area = (w - .5) * (h - .5) <= scale[1] * area and (w + .5) * (h + .5) >= scale[0] * area
        fits_aspect = (w - .5) / (h + .5) <= ratio[1] and (w + .5) / (h - .5) >= ratio[0]
        assert fits_area and fits_aspect
        mr.manual_seed(seed)
        out = T.RandomResizedCrop((6, 8), scale=scale, ratio=ratio)(pil)
        assert out.size == (8, 6)
        assert np.array_equal(np.asarray(out), np.asarray(TF.resized_crop(pil, top, left, h, w, (6, 8))))


def test_random_resized_crop_falls_back_to_the_central_crop():
    wide = Image.fromarray(np.zeros((4, 40, 3), dtype=np.uint8))  # aspect 10: no draw of ratio <= 4/3 fits
    mr.manual_seed(0)
    assert T.RandomResizedCrop.get_params(wide, (0.9, 1.0), (0.75, 4 / 3)) == (0, (40 - 5) // 2, 4, 5)


# ---- colour ------------------------------------------------------------------------------------

def test_adjustments_by_factor_1_are_identities(rgb, pil):
    t = TF.to_tensor(pil)
    for fn in (TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation):
        assert np.array_equal(np.asarray(fn(pil, 1.0)), rgb)
        np.testing.assert_allclose(fn(t, 1.0).array, t.array, atol=1e-6)
    np.testing.assert_allclose(TF.adjust_hue(t, 0.0).array, t.array, atol=1e-6)
    assert np.array_equal(np.asarray(T.ColorJitter()(pil)), rgb)


def test_brightness_contrast_saturation_formulas(rgb, pil):
    x = chw(rgb).astype(np.float64) / 255
    t = mr.Tensor(x)
    np.testing.assert_allclose(TF.adjust_brightness(t, 1.7).array, np.clip(1.7 * x, 0, 1), rtol=1e-12)
    u8 = TF.adjust_brightness(TF.pil_to_tensor(pil), 1.7).array
    assert np.array_equal(u8, np.floor(np.clip(1.7 * chw(rgb).astype(np.float64), 0, 255)).astype(np.uint8))
    gray = 0.2989 * x[0] + 0.587 * x[1] + 0.114 * x[2]
    np.testing.assert_allclose(TF.adjust_contrast(t, 0.4).array, np.clip(0.4 * x + 0.6 * gray.mean(), 0, 1), rtol=1e-12)
    np.testing.assert_allclose(TF.adjust_saturation(t, 2.5).array, np.clip(2.5 * x - 1.5 * gray, 0, 1), rtol=1e-12)
    for fn, f in ((TF.adjust_brightness, 1.7), (TF.adjust_contrast, 0.4), (TF.adjust_saturation, 2.5)):
        assert np.abs(as_array(fn(pil, f)) - fn(t, f).array).max() <= 2.5 / 255  # Pillow: bytes, truncated


def test_hue_matches_colorsys(rgb, pil):
    x = chw(rgb).astype(np.float64) / 255
    out = TF.adjust_hue(mr.Tensor(x), 0.3).array
    for i in range(H):
        for j in range(W):
            h, s, v = colorsys.rgb_to_hsv(*x[:, i, j])
            np.testing.assert_allclose(out[:, i, j], colorsys.hsv_to_rgb((h + 0.3) % 1.0, s, v), atol=1e-9)
    assert np.abs(as_array(TF.adjust_hue(pil, 0.3)) - out).max() < 0.06  # Pillow's hue is one byte
    with pytest.raises(ValueError, match=r"adjust_hue: hue_factor must lie in \[-0.5, 0.5\]"):
        TF.adjust_hue(pil, 0.7)


def test_color_jitter_applies_the_drawn_factors_in_the_drawn_order(pil):
    jitter = T.ColorJitter(brightness=0.4, contrast=(0.5, 1.5), saturation=0.3, hue=0.1)
    t = TF.to_tensor(pil)
    for seed in range(3):
        mr.manual_seed(seed)
        out = jitter(t).array
        rng = np.random.default_rng(seed)
        order = rng.permutation(4)
        factors = [rng.uniform(0.6, 1.4), rng.uniform(0.5, 1.5), rng.uniform(0.7, 1.3), rng.uniform(-0.1, 0.1)]
        ref = t
        fns = (TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue)
        for k in order:
            ref = fns[k](ref, factors[k])
        np.testing.assert_array_equal(out, ref.array)
    with pytest.raises(ValueError, match="ColorJitter: if brightness is a single number, it must be non negative"):
        T.ColorJitter(brightness=-0.1)
    with pytest.raises(ValueError, match=r"ColorJitter: hue values should lie in \[-0.5, 0.5\]"):
        T.ColorJitter(hue=0.6)


def test_grayscale_is_the_luma_formula(rgb, pil):
    x = chw(rgb).astype(np.float64) / 255
    luma = 0.2989 * x[0] + 0.587 * x[1] + 0.114 * x[2]
    np.testing.assert_allclose(T.Grayscale()(mr.Tensor(x)).array[0], luma, rtol=1e-12)
    three = T.Grayscale(3)(mr.Tensor(x)).array
    assert three.shape == (3, H, W) and np.array_equal(three[0], three[2])
    assert np.abs(as_array(T.Grayscale()(pil))[0] - luma).max() <= 1 / 255  # Pillow rounds to a byte


# ---- composition and reproducibility ----------------------------------------------------------

def test_a_seeded_pipeline_repeats_and_another_seed_differs(pil):
    pipe = T.Compose([T.RandomCrop(8, padding=2), T.RandomHorizontalFlip(), T.ColorJitter(0.2, 0.2, 0.2, 0.05),
                      T.ToTensor(), T.Normalize((0.5, 0.5, 0.5), (0.25, 0.25, 0.25)), T.RandomErasing(p=0.5)])
    runs = []
    for seed in (5, 5, 6):
        mr.manual_seed(seed)
        runs.append(np.stack([pipe(pil).array for _ in range(6)]))
    assert runs[0].shape == (6, 3, 8, 8) and runs[0].dtype == np.float32
    assert np.array_equal(runs[0], runs[1]) and not np.array_equal(runs[0], runs[2])


def test_pil_and_tensor_inputs_agree_on_geometric_transforms(pil):
    pipe = T.Compose([T.RandomCrop(9, padding=3, padding_mode="reflect"), T.RandomHorizontalFlip(),
                      T.RandomVerticalFlip(), T.Pad((1, 2)), T.CenterCrop(8), T.RandomCrop(7, padding=1)])
    for seed in range(5):
        mr.manual_seed(seed)
        a = TF.to_tensor(pipe(pil)).array
        mr.manual_seed(seed)
        b = pipe(TF.to_tensor(pil)).array
        assert np.array_equal(a, b)


def test_compose_lambda_random_apply_choice_and_erasing(pil):
    pipe = T.Compose([T.ToTensor(), T.Lambda(lambda t: t * 2)])
    np.testing.assert_allclose(pipe(pil).array, 2 * TF.to_tensor(pil).array)
    assert "ToTensor()" in repr(pipe) and repr(pipe).startswith("Compose(")
    assert T.RandomApply([T.Lambda(lambda x: None)], p=0.0)(pil) is pil
    assert T.RandomApply([T.Lambda(lambda x: 7)], p=1.0)(pil) == 7
    assert T.RandomChoice([T.Lambda(lambda x: 1), T.Lambda(lambda x: 2)], p=[0, 1])(pil) == 2
    t = mr.Tensor(np.ones((3, 20, 20), dtype=np.float32))
    mr.manual_seed(3)
    out = T.RandomErasing(p=1.0, value=0)(t).array
    mr.manual_seed(3)
    mr.default_generator().random()  # the coin comes first, then the box
    top, left, h, w, _ = T.RandomErasing.get_params(t, (0.02, 0.33), (0.3, 3.3), [0])
    ref = np.ones((3, 20, 20), dtype=np.float32)
    ref[:, top:top + h, left:left + w] = 0
    assert np.array_equal(out, ref) and 0 < h * w < 400
    with pytest.raises(TypeError, match="RandomErasing: img should be a Tensor"):
        T.RandomErasing(p=1.0)(pil)
    with pytest.raises(TypeError, match="Lambda: argument should be callable"):
        T.Lambda(3)


# ---- rotation ----------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(6, 6), (5, 8)])
def test_rotate_quarter_turns_are_rot90(shape):
    a = np.random.default_rng(2).integers(0, 256, shape + (3,), dtype=np.uint8)
    for angle, k in ((90, 1), (180, 2), (-90, 3)):
        t = TF.rotate(TF.pil_to_tensor(Image.fromarray(a)), angle, expand=True).array
        assert np.array_equal(t, chw(np.rot90(a, k)))  # counter-clockwise, as np.rot90
        assert np.array_equal(np.asarray(TF.rotate(Image.fromarray(a), angle, expand=True)), np.rot90(a, k))


@pytest.mark.parametrize("angle", [17.0, -33.0, 124.0])
def test_rotate_matches_pillow(pil, angle):
    t = TF.pil_to_tensor(pil)
    for expand in (False, True):
        ref = np.asarray(TF.rotate(pil, angle, expand=expand, fill=(9, 8, 7)))
        assert np.array_equal(TF.rotate(t, angle, expand=expand, fill=(9, 8, 7)).array, chw(ref))
    # bilinear: Pillow clamps at the border where the tensor path blends in the fill (torchvision's tensors do)
    ref = np.asarray(TF.rotate(pil, angle, T.InterpolationMode.BILINEAR)).astype(int)
    got = TF.rotate(t, angle, T.InterpolationMode.BILINEAR).array.transpose(1, 2, 0).astype(int)
    assert np.abs(got - ref)[3:-3, 3:-3].max() <= 1


def test_random_rotation_uses_the_drawn_angle(pil):
    mr.manual_seed(4)
    out = T.RandomRotation(30)(pil)
    angle = np.random.default_rng(4).uniform(-30, 30)
    assert np.array_equal(np.asarray(out), np.asarray(TF.rotate(pil, float(angle))))
    with pytest.raises(ValueError, match="RandomRotation: if degrees is a single number, it must be positive"):
        T.RandomRotation(-5)


def test_tensor_transforms_run_on_device_arrays(standin, pil):
    # the same kernels on CuPy's surface (the CPU stand-in): results stay on the device and equal the CPU's,
    # which the tests above check against NumPy, Pillow and closed forms
    cpu = TF.to_tensor(pil)
    dev = cpu.to("cuda")
    calls = [TF.hflip, lambda x: TF.pad(x, 2, padding_mode="reflect"), lambda x: TF.crop(x, -2, -1, 8, 9),
             lambda x: TF.resize(x, (6, 7)), lambda x: TF.adjust_hue(x, 0.2), lambda x: TF.rotate(x, 17, "bilinear"),
             lambda x: T.Normalize((0.5,) * 3, (0.2,) * 3)(x), lambda x: TF.convert_image_dtype(x, np.uint8)]
    for call in calls:
        out = call(dev).array
        assert isinstance(out, standin.ndarray)
        np.testing.assert_allclose(standin.asnumpy(out), call(cpu).array, rtol=1e-6, atol=1e-6)
