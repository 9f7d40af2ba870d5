"""Shared test setup: hypothesis profiles and the `gpu` marker / device fixture."""
import os
import sys

import pytest
from hypothesis import HealthCheck, settings

import minires as mr
from minires import dispatch, parallel, tuning

# The helper modules beside this file (cupy_standin, cuda_emulator, tiny_cifar, torch_scripts/) import by name
# from the test files in the subfolders, whatever pytest's import mode.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

settings.register_profile("ci", deadline=None, derandomize=True, max_examples=25,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("dev", deadline=None, max_examples=25,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("thorough", deadline=None, max_examples=300,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))

HAS_GPU = mr.backend.cupy_available()
DEVICES = ["cpu"] + (["cuda"] if HAS_GPU else [])


# In a whole-suite run with MINIRES_IMPL=reference (the README's test command makes one after the default
# run), the device variants that exist to switch implementations repeat the default run's
# cpu-reference and cuda-standin-reference cases: they are left out of it.
_REPEATS_UNDER_REFERENCE = ("[cpu-reference", "[cpu-split", "[cuda-standin", "-cpu-reference", "-cpu-split",
                            "-cuda-standin")
# Files about plumbing that no op implementation changes (MPI collectives, launch and resume across
# processes; packing files): the default run covers them, and they would cost the reference run ~90 s.
_SAME_UNDER_REFERENCE = ("test_distributed.py", "test_jpeg_pack.py")


def pytest_collection_modifyitems(config, items):
    skip = pytest.mark.skip(reason="needs CuPy and a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords and not HAS_GPU:
            item.add_marker(skip)
    if os.environ.get("MINIRES_IMPL") == "reference":
        def repeat(item):
            return any(tag in item.name for tag in _REPEATS_UNDER_REFERENCE) or item.path.name in _SAME_UNDER_REFERENCE
        repeats = [item for item in items if repeat(item)]
        if repeats:
            config.hook.pytest_deselected(items=repeats)
            items[:] = [item for item in items if not repeat(item)]


@pytest.fixture(autouse=True)
def _private_data_home(tmp_path_factory, monkeypatch):
    """Downloads and decode caches of every test go to a temporary $MINIRES_DATA, never ~/.cache."""
    monkeypatch.setenv("MINIRES_DATA", str(tmp_path_factory.mktemp("minires-data-home")))


@pytest.fixture
def standin():
    """minires on the CuPy stand-in (tests/cupy_standin.py) for the test: device "cuda" is the CPU
    behind CuPy's surface, kernels.cu runs through the emulator, host<->device copies are counted."""
    import cupy_standin
    from cuda_emulator import compiler
    if compiler() is None:
        pytest.skip("the CuPy stand-in runs kernels.cu through a C++ compiler, and none is installed")
    with cupy_standin.installed() as cp:
        cp.transfers.reset()
        yield cp


@pytest.fixture(params=[pytest.param("cpu"), pytest.param("cpu-reference"), pytest.param("cpu-split"),
                        pytest.param("cuda-standin"), pytest.param("cuda-standin-reference"),
                        pytest.param("cuda", marks=pytest.mark.gpu)])
def device(request, monkeypatch):
    """Run a test on every implementation of every op it calls: the CPU fast paths, the reference
    implementations, the CPU fast paths split over 3 threads, the CuPy stand-in, and (with a GPU) CuPy.

    "cpu-reference" runs every op on its reference Function (minires.dispatch.use_impl).
    "cpu-split" cuts every CPU kernel's batch into up to 3 parts whatever its size, with BLAS held
    (minires.parallel.hold_blas), so the multi-threaded code paths and their partial sums are
    checked on small test shapes too.
    "cuda-standin" runs every `cuda` code path (dispatch, kernels, transfers) on the CPU: the test
    sees device "cuda" (see the `standin` fixture); "cuda-standin-reference" runs the references on
    the stand-in's device arrays (what CuPy runs where no kernel applies).
    """
    if request.param.startswith("cuda-standin"):
        request.getfixturevalue("standin")
        if request.param.endswith("reference"):
            scope = dispatch.use_impl("reference")
            scope.__enter__()
            request.addfinalizer(lambda: scope.__exit__(None, None, None))
        return "cuda"
    if request.param == "cpu-reference":
        scope = dispatch.use_impl("reference")
        scope.__enter__()
        request.addfinalizer(lambda: scope.__exit__(None, None, None))
        return "cpu"
    if request.param == "cpu-split":
        monkeypatch.setattr(tuning, "MIN_PART_ELEMENTS", 1)
        previous = parallel.get_num_threads()
        parallel.set_num_threads(3)
        scope = parallel.hold_blas()
        scope.__enter__()
        request.addfinalizer(lambda: (scope.__exit__(None, None, None), parallel.set_num_threads(previous)))
        # BLAS work (conv, linear) splits only while BLAS is held: that needs threadpoolctl and a BLAS it sees.
        assert parallel.blas_held(), "cpu-split: threadpoolctl cannot hold this BLAS, so BLAS parts would not split"
        return "cpu"
    return request.param


def _script_loader(folder: str):
    """load(name) -> the module <folder>/<name>.py of this checkout (the scripts are not a package)."""
    import importlib.util

    def load(name):
        path = os.path.join(os.path.dirname(__file__), os.pardir, folder, f"{name}.py")
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    return load


@pytest.fixture
def benchmark_script():
    """load(name) -> the module benchmarks/<name>.py of this checkout."""
    return _script_loader("benchmarks")


@pytest.fixture
def tool_script():
    """load(name) -> the module tools/<name>.py of this checkout (the data tools: cifar_subset, jpeg_pack)."""
    return _script_loader("tools")


@pytest.fixture
def fast():
    """The fast paths, whatever MINIRES_IMPL says: the tests using this are about them."""
    with dispatch.use_impl("fast"):
        yield
