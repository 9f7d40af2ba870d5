"""`minires bench` (minires/bench/kernels.py) writes its JSON, Markdown and PNG outputs, also from a plain install."""
import json
import os

from minires.cli import main


def test_bench_subcommand_runs_the_kernel_benchmark(tmp_path, capsys):
    code = main(["bench", "--only", "cross_entropy", "--batch", "8", "--repeats", "1", "--warmup", "0",
                 "--no-torch", "--out", str(tmp_path)])
    assert code == 0
    out = capsys.readouterr().out
    assert "machine:" in out and "cross_entropy" in out
    data = json.loads((tmp_path / "bench_kernels.json").read_text())
    assert [r["kernel"] for r in data["rows"]] == ["cross_entropy 8x1000"]
    assert data["rows"][0]["cpu_ms"] > 0 and data["ceilings"]["cpu"][0] > 0
    assert os.path.exists(tmp_path / "bench_kernels.md")


def test_bench_refuses_a_gpu_it_does_not_have_or_a_bad_device(tmp_path, capsys):
    from minires.backend import cupy_available
    bad = ["--device", "cpu,tpu"] if cupy_available() else ["--device", "cpu,cuda"]
    code = main(["bench", "--only", "cross_entropy", "--batch", "4", "--repeats", "1", "--warmup", "0",
                 "--no-torch", "--out", str(tmp_path)] + bad)
    assert code == 2
    err = capsys.readouterr().err
    assert "--device" in err and ("tpu" in err or "CUDA GPU" in err)


def test_bench_train_times_steps_in_fresh_processes_and_writes_its_table(tmp_path, capsys, benchmark_script):
    benchmark_script("bench_train").main(["--models", "resnet20", "--batch", "2", "--steps", "2", "--warmup", "1", "--rounds", "2",
                         "--no-torch", "--out", str(tmp_path)])
    data = json.loads((tmp_path / "bench_train.json").read_text())
    (row,) = data["rows"]
    assert row["model"] == "resnet20" and len(row["mr_rounds"]) == 2
    assert row["mr_img_s"] > 0 and row["mr_rss"] > 0
    assert "on cpu, batch 2" in data["header"] and "steal time" in capsys.readouterr().out


def test_bench_train_refuses_a_gpu_it_does_not_have_or_a_bad_device(tmp_path, capsys, benchmark_script):
    import pytest
    from minires.backend import cupy_available
    bad = "tpu" if cupy_available() else "cuda"
    with pytest.raises(SystemExit) as e:
        benchmark_script("bench_train").main(["--device", bad, "--no-torch", "--out", str(tmp_path)])
    assert e.value.code == 2
    assert f"--device {bad}" in capsys.readouterr().err


def test_bench_runs_from_a_plain_install_without_the_source_tree(tmp_path):
    """pip install . (not editable), then `minires bench --help` and a short run, from elsewhere."""
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    site = tmp_path / "site"
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                        "--target", str(site), root], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert not (site / "benchmarks").exists()
    env = dict(os.environ, PYTHONPATH=str(site))
    run = lambda *a: subprocess.run([sys.executable, "-m", "minires", "bench", *a], capture_output=True,  # noqa: E731
                                    text=True, cwd=tmp_path, env=env)
    r = run("--help")
    assert r.returncode == 0 and "usage: minires bench" in r.stdout
    r = run("--only", "relu", "--batch", "2", "--repeats", "1", "--warmup", "0", "--no-torch", "--out", "b")
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.count("| kernel") == 1  # one table
    assert sorted(os.listdir(tmp_path / "b")) == ["bench_kernels.json", "bench_kernels.md", "bench_kernels.png"]
    assert f"to {tmp_path / 'b'}" in r.stdout


def test_bench_times_the_kernels_with_blas_held_and_gives_it_back(tmp_path, monkeypatch):
    from minires import parallel
    from minires.bench import kernels

    class Library:  # one BLAS library as threadpoolctl shows it, at 4 threads of its own
        num_threads = 4

        def set_num_threads(self, n):
            self.num_threads = n
    lib, seen = Library(), []
    monkeypatch.setattr(parallel, "_blas", type("Controller", (), {"lib_controllers": [lib]})())
    real = kernels.median_ms
    monkeypatch.setattr(kernels, "median_ms", lambda *a, **kw: (seen.append(lib.num_threads), real(*a, **kw))[1])
    previous = parallel.get_num_threads()
    parallel.set_num_threads(2)
    try:
        assert main(["bench", "--only", "relu", "--batch", "2", "--repeats", "1", "--warmup", "0", "--no-torch",
                     "--out", str(tmp_path)]) == 0
    finally:
        parallel.set_num_threads(previous)
    assert seen and set(seen) == {1} and lib.num_threads == 4  # every kernel timed with BLAS held
