"""minires.models: torchvision names and parameter counts, output shapes, block gradients, overfitting."""
import numpy as np
import pytest

import minires as mr
from minires import models, nn
from minires import functional as F
from minires.models.resnet import BasicBlock, Bottleneck


def _x(shape, seed=0, dtype=np.float32):
    return mr.tensor(np.random.default_rng(seed).standard_normal(shape).astype(dtype))


def _n_params(model):
    return sum(p.numel() for p in model.parameters())


# Building the ImageNet ResNets costs seconds (random init of 11M / 25M weights): build each once, read-only.
@pytest.fixture(scope="module")
def r18():
    mr.manual_seed(0)
    return models.resnet18()


@pytest.fixture(scope="module")
def r50():
    return models.resnet50()


# ---- registry -------------------------------------------------------------------------------
def test_names_and_unknown_name():
    assert set(models.names()) == {"resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnet20",
                                   "resnet32", "resnet44", "resnet56", "resnet110", "resnet9", "airbench94"}
    with pytest.raises(ValueError, match="unknown model 'resnet7'.*resnet18.*resnet9"):
        models.get("resnet7")


# ---- torchvision layout ---------------------------------------------------------------------
def test_resnet18_state_dict_keys_match_torchvision(r18):
    keys = list(r18.state_dict())
    # 20 convs (stem + 8 blocks x 2 + 3 downsample projections), 20 BNs x 5 entries, fc weight + bias.
    assert len(keys) == 20 + 20 * 5 + 2 == 122
    bn = ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    assert keys[:6] == ["conv1.weight"] + [f"bn1.{s}" for s in bn]
    assert keys[6:18] == (["layer1.0.conv1.weight"] + [f"layer1.0.bn1.{s}" for s in bn]
                          + ["layer1.0.conv2.weight"] + [f"layer1.0.bn2.{s}" for s in bn])
    assert keys[-2:] == ["fc.weight", "fc.bias"]
    for stage in (2, 3, 4):
        assert f"layer{stage}.0.downsample.0.weight" in keys
        assert f"layer{stage}.0.downsample.1.num_batches_tracked" in keys
        assert f"layer{stage}.1.downsample.0.weight" not in keys
    assert "layer1.0.downsample.0.weight" not in keys
    shapes = {k: v.shape for k, v in r18.state_dict().items()}
    assert shapes["conv1.weight"] == (64, 3, 7, 7)
    assert shapes["layer4.1.conv2.weight"] == (512, 512, 3, 3)
    assert shapes["layer3.0.downsample.0.weight"] == (256, 128, 1, 1)
    assert shapes["fc.weight"] == (1000, 512)


def test_resnet50_layout_v1_5(r50):
    m = r50
    keys = list(m.state_dict())
    # 53 convs (stem + 16 blocks x 3 + 4 projections), 53 BNs x 5, fc weight + bias.
    assert len(keys) == 53 + 53 * 5 + 2
    assert "layer1.0.downsample.0.weight" in keys  # 64 -> 256 channels needs a projection
    assert m.layer1[0].conv3.weight.shape == (256, 64, 1, 1)
    block = m.layer2[0]
    assert block.conv1.stride == (1, 1) and block.conv2.stride == (2, 2)  # stride on the 3x3 (v1.5)
    assert m.fc.in_features == 2048


def test_parameter_counts(r18, r50):
    assert _n_params(r18) == 11_689_512  # torchvision's published counts (1000 classes)
    assert _n_params(r50) == 25_557_032


def _cifar_count(n, classes=10):
    """Closed form for the option-B CIFAR ResNet-(6n+2): convs 3x3 no bias, BN 2 params/channel."""
    def block(cin, c):
        return 9 * cin * c + 2 * c + 9 * c * c + 2 * c + ((cin * c + 2 * c) if cin != c else 0)
    total = 9 * 3 * 16 + 2 * 16  # stem
    for cin, c in ((16, 16), (16, 32), (32, 64)):
        total += block(cin, c) + (n - 1) * block(c, c)
    return total + 64 * classes + classes


@pytest.mark.parametrize("name,n", [("resnet20", 3), ("resnet32", 5), ("resnet56", 9), ("resnet110", 18)])
def test_cifar_resnet_parameter_counts(name, n):
    m = models.get(name)
    assert _n_params(m) == _cifar_count(n)
    assert sum(isinstance(x, nn.Conv2d) for x in m.modules()) == 6 * n + 1 + 2  # 6n+1 convs + 2 projections


def test_resnet20_is_about_270k():
    assert _cifar_count(3) == 272_474 and abs(_n_params(models.resnet20()) - 0.27e6) < 0.01e6


def test_resnet9_structure_and_count():
    m = models.resnet9()
    convs = [(9 * 3 * 64), 9 * 64 * 128, 2 * 9 * 128 * 128, 9 * 128 * 256, 9 * 256 * 512, 2 * 9 * 512 * 512]
    bn = 2 * (64 + 128 + 2 * 128 + 256 + 512 + 2 * 512)
    assert _n_params(m) == sum(convs) + bn + 512 * 10  # classifier without bias, as Myrtle's
    assert isinstance(m.fc, nn.Linear) and m.fc.in_features == 512
    assert "layer1.res1.conv.weight" in m.state_dict() and not hasattr(m.layer2, "res1")


# ---- forward shapes -------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152"])
def test_imagenet_resnets_output_shape(name, request):
    # resnet18/50 reuse the module fixtures (1000 classes); the others are built once here.
    m = request.getfixturevalue(name[:1] + name[6:]) if name in ("resnet18", "resnet50") \
        else models.get(name, num_classes=7)
    m.eval()
    with mr.no_grad():
        out = m(_x((1, 3, 32, 32)))  # 32x32 is the smallest size that survives the 32x downsampling
    m.train()
    assert out.shape == (1, m.fc.out_features) and out.dtype == np.float32 and np.isfinite(out.numpy()).all()


@pytest.mark.parametrize("name", ["resnet20", "resnet32", "resnet44", "resnet56", "resnet110", "resnet9"])
def test_cifar_models_output_shape(name):
    m = models.get(name).eval()
    with mr.no_grad():
        out = m(_x((2, 3, 32, 32)))
    assert out.shape == (2, 10) and np.isfinite(out.numpy()).all()


def test_small_input_stem_and_fc_replacement():
    m = models.resnet18(num_classes=10, small_input=True)
    assert m.conv1.kernel_size == (3, 3) and m.conv1.stride == (1, 1) and isinstance(m.maxpool, nn.Identity)
    assert len(m.state_dict()) == 122  # Identity has no state: same keys as torchvision
    m.fc = nn.Linear(m.fc.in_features, 3)
    m.eval()
    with mr.no_grad():
        assert m(_x((1, 3, 8, 8))).shape == (1, 3)
    assert m.state_dict()["fc.weight"].shape == (3, 512)


def test_resnet9_global_max_pool_and_scale():
    m = models.resnet9(num_classes=4).eval()
    x = _x((2, 3, 32, 32))
    with mr.no_grad():
        feats = m.layer3(m.layer2(m.layer1(m.prep(x)))).numpy()  # (N, 512, 4, 4)
        out = m(x).numpy()
    pooled = feats.max(axis=(2, 3))  # global max over H, W
    np.testing.assert_allclose(out, 0.125 * pooled @ m.fc.weight.numpy().T, rtol=1e-4, atol=1e-6)


# ---- init -----------------------------------------------------------------------------------
def test_torchvision_init_statistics_and_zero_init_residual(r18):
    m = r18
    w = m.layer4[0].conv2.weight.numpy()  # (512, 512, 3, 3): fan_out = 512 * 9
    assert w.std() == pytest.approx(np.sqrt(2.0 / (512 * 9)), rel=0.01)
    assert all(np.all(b.weight.numpy() == 1) and np.all(b.bias.numpy() == 0)
               for b in m.modules() if isinstance(b, nn.BatchNorm2d))
    z18 = models.ResNet(BasicBlock, [1, 1, 1, 1], zero_init_residual=True)
    assert all(np.all(b.bn2.weight.numpy() == 0) and np.all(b.bn1.weight.numpy() == 1)
               for b in z18.modules() if isinstance(b, BasicBlock))
    z50 = models.ResNet(Bottleneck, [1, 1, 1, 1], zero_init_residual=True)
    assert all(np.all(b.bn3.weight.numpy() == 0) for b in z50.modules() if isinstance(b, Bottleneck))


@pytest.mark.parametrize("block", [BasicBlock(8, 8), Bottleneck(16, 4)])
def test_zero_init_block_is_identity_on_relu_input(block):
    # With the last BN scaled to zero the residual branch is 0, so relu(0 + x) = x for x >= 0.
    for m in block.modules():
        if isinstance(m, nn.BatchNorm2d):
            last = m
    nn.init.zeros_(last.weight)
    x = mr.tensor(np.abs(_x((2, block.conv1.in_channels, 5, 5)).numpy()))
    np.testing.assert_allclose(block(x).numpy(), x.numpy(), atol=1e-6)


# ---- gradients ------------------------------------------------------------------------------
def _gradcheck_block(block, x_shape, fast_mode):
    block.to(mr.float64)
    x = mr.tensor(np.random.default_rng(1).standard_normal(x_shape), requires_grad=True)
    params = list(block.parameters())
    # The block reads its Parameters, which gradcheck perturbs in place.
    assert mr.gradcheck(lambda x, *ps: block(x), [x, *params], fast_mode=fast_mode)


@pytest.mark.parametrize("train", [True, False])
def test_basic_block_gradcheck(train):
    mr.manual_seed(0)
    downsample = nn.Sequential(nn.Conv2d(2, 3, 1, stride=2, bias=False), nn.BatchNorm2d(3))
    block = BasicBlock(2, 3, stride=2, downsample=downsample).train(train)
    _gradcheck_block(block, (2, 2, 5, 5), fast_mode=False)


@pytest.mark.parametrize("stride", [1, 2])
def test_bottleneck_gradcheck(stride):
    mr.manual_seed(0)
    downsample = nn.Sequential(nn.Conv2d(4, 8, 1, stride=stride, bias=False), nn.BatchNorm2d(8))
    block = Bottleneck(4, 2, stride=stride, downsample=downsample)
    _gradcheck_block(block, (2, 4, 4, 4), fast_mode=True)
    identity_block = Bottleneck(8, 2)
    _gradcheck_block(identity_block, (2, 8, 3, 3), fast_mode=True)


# ---- state_dict round trip and training -------------------------------------------------------
def test_state_dict_round_trip_resnet20():
    mr.manual_seed(0)
    a = models.resnet20()
    a(_x((4, 3, 16, 16), seed=1))  # training forward: running statistics move away from 0 / 1
    saved = {k: v.numpy().copy() for k, v in a.state_dict().items()}
    assert saved["layer3.2.bn2.num_batches_tracked"] == 1
    mr.manual_seed(1)
    b = models.resnet20()
    b.load_state_dict(saved)
    a.eval(), b.eval()
    x = _x((2, 3, 16, 16), seed=2)
    with mr.no_grad():
        np.testing.assert_array_equal(a(x).numpy(), b(x).numpy())
    mr.manual_seed(1)
    with mr.no_grad():
        fresh = models.resnet20().eval()(x).numpy()
    assert not np.allclose(fresh, a(x).numpy())  # the load did change something


def test_tiny_resnet_overfits_a_batch_with_sgd():
    mr.manual_seed(0)
    model = models.CifarResNet(1, num_classes=10, widths=(8, 16, 16))
    x = _x((8, 3, 16, 16), seed=3)
    y = mr.tensor(np.arange(8) % 10)
    params = list(model.parameters())
    velocity = [np.zeros_like(p.array) for p in params]
    losses = []
    for _ in range(30):
        loss = F.cross_entropy(model(x), y)
        model.zero_grad()
        loss.backward()
        for p, v in zip(params, velocity):  # SGD, momentum 0.9
            v *= 0.9
            v += p.grad.array
            p.array -= 0.05 * v
        losses.append(loss.item())
    assert losses[0] > 1.5 and losses[-1] < 0.1 * losses[0], losses


def test_model_moves_to_device(device):
    mr.manual_seed(0)
    m = models.resnet20().eval()
    x = _x((2, 3, 16, 16))
    with mr.no_grad():
        expected = m(x).numpy()
        m.to(device)
        assert all(p.device.startswith(device) for p in m.parameters())
        assert m.layer1[0].bn1.running_var.device.startswith(device)
        out = m(x.to(device))
    assert out.device.startswith(device)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-4, atol=1e-5)
    m.load_state_dict({k: v.numpy() for k, v in m.state_dict().items()})  # NumPy values into device arrays
    assert m.fc.weight.device.startswith(device)
