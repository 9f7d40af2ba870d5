"""README's "Differences from PyTorch", each bold key demonstrated: a bullet without a check here fails,
and so does a check whose stated behaviour changes."""
import os
import re
import warnings

import numpy as np
import pytest

import minires as mr
import minires.nn.functional as F
from minires import backend, nn, optim
from minires.utils.data import DataLoader as TorchStyleLoader
from minires.vision import models as vision_models
from minires.vision import transforms

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def readme_keys():
    text = open(os.path.join(ROOT, "README.md")).read()
    section = text.split("## Differences from PyTorch", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^- \*\*(.+?)\*\*", section, flags=re.M)


def devices_and_dtypes():
    assert mr.device("cpu") == "cpu" and mr.device("cuda:1").type == "cuda" and mr.device("cuda:1").index == 1
    assert backend.parse_device("cuda") == "cuda:0"
    assert mr.float == np.dtype("float32") and mr.long == np.dtype("int64") and mr.Size is tuple
    assert not hasattr(mr, "bfloat16")
    assert mr.zeros(2).type() == "torch.FloatTensor"


def raw_arrays():
    t = mr.ones(3, requires_grad=True)
    assert isinstance(t.data, mr.Tensor) and not t.data.requires_grad and isinstance(t.array, np.ndarray)
    t.data[0] = 5.0  # the same values
    np.testing.assert_array_equal(np.asarray(t), [5.0, 1.0, 1.0])
    np.testing.assert_array_equal(t.numpy(), [5.0, 1.0, 1.0])


def integer_and_float_mixes():
    i = mr.tensor([1, 2, 3])
    assert (i * 0.5).dtype == mr.float64 and (i / i).dtype == mr.float64
    assert (i.float() * 0.5).dtype == mr.float32


def in_place_methods():
    p = mr.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="in place"):
        p.add_(1.0)
    before = p
    with mr.no_grad():
        p -= 0.5 * mr.ones(3)
    assert p is before and np.allclose(p.numpy(), 0.5)
    x = mr.tensor([-1.0, 2.0])
    y = F.relu(x, inplace=True)
    assert y is not x and x.numpy()[0] == -1.0 and y.numpy()[0] == 0.0


def copies():
    t = mr.arange(4.0)
    np.testing.assert_array_equal(t.to("cpu", non_blocking=True).numpy(), t.numpy())
    np.testing.assert_array_equal(t.pin_memory().numpy(), t.numpy())


def ties():
    x = mr.tensor([[1.0, 3.0, 3.0]], requires_grad=True)
    values, indices = mr.max(x, 1)
    assert indices.item() == 1
    values.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[0.0, 1.0, 0.0]])
    z = mr.tensor([1.0, 3.0, 3.0], requires_grad=True)
    z.amax().backward()
    np.testing.assert_array_equal(z.grad.numpy(), [0.0, 0.5, 0.5])


def autograd_():
    x = mr.tensor([2.0], requires_grad=True)
    with pytest.raises(NotImplementedError):
        mr.autograd.grad((x * x).sum(), [x], create_graph=True)
    assert mr.autograd.Variable(x) is x


def labels_on_a_gpu(standin):
    logits = mr.zeros(2, 3, device="cuda")
    loss = F.cross_entropy(logits, mr.tensor([0, 7], device="cuda"), reduction="none")
    assert np.isfinite(loss.numpy()[0]) and np.isnan(loss.numpy()[1])
    with pytest.raises(ValueError):
        F.nll_loss(F.log_softmax(logits, 1), mr.tensor([0, 7], device="cuda"))


def losses():
    logits = mr.zeros(2, 3)
    with pytest.raises(ValueError):
        nn.CrossEntropyLoss()(logits, mr.tensor([0, -100]))
    with pytest.warns(UserWarning):
        summed = F.cross_entropy(logits, mr.tensor([0, 1]), size_average=False)
    assert summed.item() == pytest.approx(2 * np.log(3))
    with pytest.warns(UserWarning):
        assert nn.CrossEntropyLoss(size_average=False)(logits, mr.tensor([0, 1])).item() == pytest.approx(2 * np.log(3))
    with pytest.raises(ValueError):
        F.mse_loss(mr.zeros(2, 3), mr.zeros(3))


def nn_functional():
    with pytest.warns(UserWarning):
        F.softmax(mr.zeros(2, 3))
    with pytest.raises((TypeError, ValueError), match="dim"):
        nn.Softmax()(mr.zeros(2, 3))  # no implicit dim
    with pytest.raises(NotImplementedError):
        F.max_pool2d(mr.zeros(1, 1, 4, 4), 2, ceil_mode=True)
    assert not hasattr(F, "interpolate")


def dropout_on_a_gpu(standin):
    mr.manual_seed(3)
    cpu = F.dropout(mr.ones(64), 0.5, training=True).numpy()
    mr.manual_seed(3)
    gpu = F.dropout(mr.ones(64, device="cuda"), 0.5, training=True).numpy()
    np.testing.assert_array_equal(cpu, gpu)


def random_streams():
    mr.manual_seed(0)
    a = mr.rand(4).numpy()
    mr.cuda.manual_seed_all(123)  # changes nothing
    b = mr.rand(4).numpy()
    mr.manual_seed(0)
    np.testing.assert_array_equal(np.concatenate([a, b]), mr.rand(8).numpy())
    np.testing.assert_allclose(a, np.random.default_rng(0).random(4), rtol=1e-7)  # PCG64's stream


def torch_backends():
    mr.backends.cudnn.benchmark = True
    mr.backends.cudnn.deterministic = True
    assert mr.backends.mps.is_available() is False


def data_parallel():
    with pytest.warns(UserWarning, match="one device per process"):
        wrapped = nn.DataParallel(nn.Linear(2, 3), device_ids=[0, 1])
    assert sorted(wrapped.state_dict()) == ["module.bias", "module.weight"]
    with pytest.warns(UserWarning, match="without averaging gradients"):
        nn.parallel.DistributedDataParallel(nn.Linear(2, 3))


def save_load(tmp_path):
    import pickle
    path = tmp_path / "model.pth"
    with pytest.raises((TypeError, ValueError)):
        mr.save(nn.Linear(2, 3), path)  # a whole Module is not a state_dict
    planted = tmp_path / "planted.pkl"
    planted.write_bytes(pickle.dumps(os.getcwd))  # a plain pickle naming a callable
    with pytest.raises(ValueError):
        mr.load(planted, weights_only=False)
    mr.save({"acc": np.float64(93.2)}, path)
    assert type(mr.load(path)["acc"]) is float


def two_dataloaders():
    assert TorchStyleLoader is not mr.data.DataLoader
    batches = [b.numpy().tolist() for b in TorchStyleLoader(list(range(6)), batch_size=2, num_workers=0, in_order=False)]
    assert batches == [[0, 1], [2, 3], [4, 5]]


def vision():
    assert not isinstance(transforms.ToTensor(), nn.Module)
    with pytest.raises(ValueError, match="load_state_dict"):
        vision_models.resnet18(pretrained=True)
    with pytest.raises(ValueError):
        transforms.Pad(-1)


def missing_apis():
    with pytest.raises(ImportError, match="cannot import name"):
        exec("from minires.nn.functional import no_such_function", {})
    with pytest.raises(AttributeError, match="minires does not provide torch.nn.Transformer"):
        mr.nn.Transformer  # noqa: B018
    with pytest.raises(AttributeError) as info:
        mr.zeros(1).no_such_method  # noqa: B018
    assert "minires does not provide" not in str(info.value)


def autocast():
    with pytest.raises(ValueError, match="only float16"):
        mr.amp.autocast("cpu", dtype=mr.float32)
    with mr.autocast("cpu"):
        assert mr.amp.autocast_dtype() == np.float16
        x = mr.randn(2, 3, 4, 4)
        assert F.conv2d(x, mr.randn(3, 3, 1, 1)).dtype == np.float16
        bn = F.batch_norm(x.half(), mr.zeros(3), mr.ones(3), training=True)
        assert bn.dtype == np.float32  # widened: batch norm computes and returns float32


def reduce_lr_on_plateau_nan():
    sched = optim.lr_scheduler.ReduceLROnPlateau(optim.SGD([nn.Parameter(mr.zeros(1))], lr=0.1))
    with pytest.raises(ValueError):
        sched.step(float("nan"))


CHECKS = {
    "Devices and dtypes:": devices_and_dtypes,
    "Raw arrays:": raw_arrays,
    "Integer and float mixes": integer_and_float_mixes,
    "In-place methods": in_place_methods,
    "Copies": copies,
    "Ties:": ties,
    "autograd:": autograd_,
    "Labels on a GPU:": labels_on_a_gpu,
    "Losses:": losses,
    "nn.functional:": nn_functional,
    "Dropout on a GPU": dropout_on_a_gpu,
    "Random streams": random_streams,
    "`torch.backends`:": torch_backends,
    "`nn.DataParallel`": data_parallel,
    "`mr.save`/`mr.load`:": save_load,
    "Two DataLoaders:": two_dataloaders,
    "vision:": vision,
    "Missing APIs:": missing_apis,
    "`autocast`": autocast,
    "`ReduceLROnPlateau.step(nan)`": reduce_lr_on_plateau_nan,
}


def test_every_difference_has_a_check():
    assert readme_keys() == list(CHECKS)


@pytest.mark.parametrize("key", list(CHECKS))
def test_the_difference_holds(key, request):
    check = CHECKS[key]
    names = check.__code__.co_varnames[:check.__code__.co_argcount]
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        check(*(request.getfixturevalue(n) for n in names))
