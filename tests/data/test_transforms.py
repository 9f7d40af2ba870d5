"""Batch transforms against per-image loops, closed forms and identities."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

from minires import backend
from minires.data import CIFAR10_MEAN, CIFAR10_STD
from minires.data import transforms as T


def batch(n=16, c=3, h=32, w=32, seed=0, low=0.0):
    return np.random.default_rng(seed).uniform(low, 1.0, (n, c, h, w)).astype(np.float32)


def rng(seed=0):
    return np.random.default_rng(seed)


# ---- RandomCrop ------------------------------------------------------------------------------------------
@given(n=st.integers(1, 6), h=st.integers(3, 9), w=st.integers(3, 9), pad=st.integers(0, 2),
       mode=st.sampled_from(["reflect", "constant"]), seed=st.integers(0, 2**16))
def test_random_crop_is_a_window_of_the_padded_image(n, h, w, pad, mode, seed):
    x = batch(n, 2, h, w, seed)
    size = (h - 1, w) if h > 1 else (h, w)
    out = T.RandomCrop(size, padding=pad, padding_mode=mode)(x, rng(seed))
    assert out.shape == (n, 2) + size and out.dtype == x.dtype
    padded = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), mode=mode)  # the reference padding
    for i in range(n):
        matches = [(a, b) for a in range(padded.shape[2] - size[0] + 1) for b in range(padded.shape[3] - size[1] + 1)
                   if np.array_equal(out[i], padded[i, :, a:a + size[0], b:b + size[1]])]
        assert matches, f"image {i} is no window of its padded image"


@pytest.mark.parametrize("mode", ["reflect", "constant"])
def test_random_crop_takes_the_drawn_window(mode):
    x = batch(32, 3, 32, 32)
    crop = T.RandomCrop(28, padding=4, padding_mode=mode)
    out = crop(x, rng(11))
    oy, ox = crop.get_params(32, 40, 40, rng(11))  # the same draws
    padded = np.pad(x, ((0, 0), (0, 0), (4, 4), (4, 4)), mode=mode)
    for i in range(len(x)):
        np.testing.assert_array_equal(out[i], padded[i, :, oy[i]:oy[i] + 28, ox[i]:ox[i] + 28])


def test_random_crop_offsets_cover_every_position():
    x = batch(400, 1, 8, 8)
    out = T.RandomCrop(8, padding=2)(x, rng(1))
    padded = np.pad(x, ((0, 0), (0, 0), (2, 2), (2, 2)), mode="reflect")
    seen = set()
    for i in range(len(x)):
        for a in range(5):
            for b in range(5):
                if np.array_equal(out[i], padded[i, :, a:a + 8, b:b + 8]):
                    seen.add((a, b))
    assert seen == {(a, b) for a in range(5) for b in range(5)}


def test_random_crop_bad_arguments():
    with pytest.raises(ValueError, match="RandomCrop: padding_mode"):
        T.RandomCrop(32, padding_mode="edge")
    with pytest.raises(ValueError, match=r"RandomCrop: expected a batch of shape \(N, C, H, W\), got \(3, 32, 32\)"):
        T.RandomCrop(32)(np.zeros((3, 32, 32), np.float32), rng())
    with pytest.raises(TypeError, match="RandomCrop: expected a floating batch"):
        T.RandomCrop(32)(np.zeros((1, 3, 32, 32), np.uint8), rng())
    with pytest.raises(TypeError, match="RandomCrop: needs an explicit numpy Generator"):
        T.RandomCrop(32)(batch(2), None)
    with pytest.raises(ValueError, match="RandomCrop: reflect padding 4 needs H and W > 4"):
        T.RandomCrop(4, padding=4)(batch(1, 1, 4, 4), rng())


# ---- RandomHorizontalFlip --------------------------------------------------------------------------------
def test_flip_always_and_never():
    x = batch()
    np.testing.assert_array_equal(T.RandomHorizontalFlip(1.0)(x, rng()), x[..., ::-1])
    np.testing.assert_array_equal(T.RandomHorizontalFlip(0.0)(x, rng()), x)


def test_flip_is_an_involution_per_image():
    x = batch(64)
    flip = T.RandomHorizontalFlip(0.5)
    once = flip(x, rng(3))
    np.testing.assert_array_equal(flip(once, rng(3)), x)  # the same draws undo it
    flipped = [i for i in range(len(x)) if np.array_equal(once[i], x[i, :, :, ::-1])]
    kept = [i for i in range(len(x)) if np.array_equal(once[i], x[i])]
    assert len(flipped) + len(kept) == len(x) and 16 < len(flipped) < 48
    assert once is not x and np.array_equal(x, batch(64))  # the input is untouched


# ---- Cutout ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [1, 8, 13])
def test_cutout_zeroes_one_clipped_square(size):
    x = batch(200, 3, 16, 16, low=0.5)  # no zeros in the input
    out = T.Cutout(size)(x, rng(size))
    full = 0
    for i in range(len(x)):
        zero = out[i] == 0
        assert (zero == zero[0]).all()  # the same patch in every channel
        np.testing.assert_array_equal(out[i][~zero], x[i][~zero])
        ys, xs = np.nonzero(zero[0])
        assert len(ys), "cutout removed nothing"
        y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
        assert zero[0].sum() == (y1 - y0) * (x1 - x0)  # a filled rectangle
        # each side is `size` long unless the square was clipped at that border
        assert (y1 - y0 == size) or ((y0 == 0 or y1 == 16) and y1 - y0 < size)
        assert (x1 - x0 == size) or ((x0 == 0 or x1 == 16) and x1 - x0 < size)
        full += (y1 - y0, x1 - x0) == (size, size)
    assert full > 0


# ---- Normalize and Compose -------------------------------------------------------------------------------
def test_normalize_closed_form():
    x = batch(4)
    out = T.Normalize(CIFAR10_MEAN, CIFAR10_STD)(x)
    for c in range(3):
        np.testing.assert_allclose(out[:, c], (x[:, c] - CIFAR10_MEAN[c]) / CIFAR10_STD[c], rtol=1e-6, atol=1e-6)
    assert out.dtype == np.float32
    with pytest.raises(ValueError, match=r"Normalize: 3 channel statistics for a batch of shape \(4, 2, 32, 32\)"):
        T.Normalize(CIFAR10_MEAN, CIFAR10_STD)(x[:, :2])


def test_compose_applies_in_order_with_one_rng():
    x = batch(8)
    steps = [T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.Cutout(8), T.Normalize((0.5,) * 3, (0.25,) * 3)]
    out = T.Compose(steps)(x, rng(5))
    r, ref = rng(5), x
    for t in steps:
        ref = t(ref, r)
    np.testing.assert_array_equal(out, ref)
    assert out.shape == x.shape and out.dtype == np.float32


def test_transforms_on_device_match_numpy(device):
    x = batch(8)
    t = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.Cutout(8),
                   T.Normalize(CIFAR10_MEAN, CIFAR10_STD)])
    out = t(backend.to_device(x, device), rng(7))
    assert backend.device_of(out).startswith(device)
    np.testing.assert_allclose(backend.to_numpy(out), t(x, rng(7)), rtol=1e-6, atol=1e-6)


# ---- per-sample draws (SampleRNG, what the DataLoader passes) ------------------------------------------
def test_sample_rng_draws_belong_to_the_sample_not_the_batch():
    a, b = T.SampleRNG([5, 9, 2], seed=1, epoch=3), T.SampleRNG([2, 5], seed=1, epoch=3)
    for _ in range(3):  # call by call, sample 5 and sample 2 draw the same values in either batch
        va, vb = a.integers(0, 10**6, 3), b.integers(0, 10**6, 2)
        assert (va[0], va[2]) == (vb[1], vb[0])
    other_epoch, other_seed = T.SampleRNG([5], seed=1, epoch=4), T.SampleRNG([5], seed=2, epoch=3)
    first = T.SampleRNG([5], seed=1, epoch=3).random(1)
    assert other_epoch.random(1) != first and other_seed.random(1) != first
    rows = T.SampleRNG([0, 1], seed=0).random((2, 4))  # size (n, k): k values per sample
    assert rows.shape == (2, 4) and len(set(rows.ravel())) == 8


def test_sample_rng_distributions():
    r = T.SampleRNG(np.arange(200_000), seed=7, epoch=1)
    u = r.random(200_000)
    assert 0 <= u.min() and u.max() < 1 and abs(u.mean() - 0.5) < 3e-3 and abs(u.var() - 1 / 12) < 2e-3
    k = r.integers(3, 10, size=200_000)
    assert k.min() == 3 and k.max() == 9 and k.dtype == np.int64
    np.testing.assert_allclose(np.bincount(k - 3) / len(k), np.full(7, 1 / 7), atol=4e-3)
    z = r.normal(1.0, 2.0, size=200_000)
    assert abs(z.mean() - 1.0) < 0.02 and abs(z.std() - 2.0) < 0.02
    assert abs(np.corrcoef(u[:-1], u[1:])[0, 1]) < 0.01  # neighbouring samples independent
    assert abs(np.corrcoef(u, r.random(200_000))[0, 1]) < 0.01  # successive calls independent


def test_sample_rng_bad_draws_and_the_batch_generator():
    r = T.SampleRNG([3, 4], seed=0)
    with pytest.raises(ValueError, match="size must start with the batch's 2 samples, got size=3"):
        r.random(3)
    with pytest.raises(ValueError, match="high must exceed low"):
        r.integers(5, 5, size=2)
    with pytest.raises(ValueError, match="SampleRNG: indices must be a 1-D array of non-negative ints"):
        T.SampleRNG([-1])
    perm = r.permutation(5)  # other Generator methods: one Generator per batch, keyed by its samples
    np.testing.assert_array_equal(perm, T.SampleRNG([3, 4], seed=0).permutation(5))
    assert sorted(perm) == list(range(5))


def test_augmentation_is_the_same_whatever_the_batching():
    x = batch(12)
    t = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.Cutout(8)])
    whole = t(x, T.SampleRNG(np.arange(12), seed=0, epoch=1))
    parts = [t(x[i:j], T.SampleRNG(np.arange(i, j), seed=0, epoch=1)) for i, j in [(0, 5), (5, 6), (6, 12)]]
    np.testing.assert_array_equal(np.concatenate(parts), whole)
    assert not np.array_equal(whole, t(x, T.SampleRNG(np.arange(12), seed=0, epoch=2)))
