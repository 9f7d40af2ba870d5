"""The benchmarks' plumbing: `minires bench` (minires/bench/kernels.py) writes its JSON, Markdown and PNG outputs,
also from a plain install; bench_train and bench_recipe pick their PyTorch reference and start their children."""
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


def _runs(**img_s):
    """Per-round child results as bench_train's children print them: {run: [{"img_s", "peak_rss_mb"}, ...]}."""
    return {lib: [{"img_s": v, "peak_rss_mb": 100.0 + i} for i, v in enumerate(vals)] for lib, vals in img_s.items()}


def test_bench_train_ratios_are_to_the_faster_float32_layout_never_to_bf16(benchmark_script):
    bt = benchmark_script("bench_train")
    libs = ["mr", "torch_cl", "torch_nchw", "torch_bf16"]
    row = bt._summarise("resnet9", _runs(mr=[100, 120, 110], torch_cl=[200, 210, 190], torch_nchw=[150, 160, 140],
                                         torch_bf16=[900, 900, 900]), libs)
    assert row["reference"] == "torch_cl" and row["reference_layout"] == "channels_last"
    assert row["ratio"] == 110 / 200 and row["ratio_nchw"] == 110 / 150 and row["mr_rss"] == 102.0
    table = {r["library"]: r for r in bt._table_rows([row], libs)}
    assert set(table) == {"minires", "PyTorch float32 channels_last = reference",
                          "PyTorch float32 NCHW (the old reference)", "PyTorch bf16 autocast channels_last (reference row)"}
    assert table["PyTorch float32 channels_last = reference"]["speed"] == 1.0
    assert table["minires"]["speed"] == 110 / 200 and table["minires"]["rounds"] == "100.0, 120.0, 110.0"
    assert table["PyTorch bf16 autocast channels_last (reference row)"]["speed"] == 900 / 200
    # where NCHW is the faster (narrow layers, say), it is the reference and both ratios agree
    row = bt._summarise("resnet20", _runs(mr=[50], torch_cl=[80], torch_nchw=[100]), libs[:3])
    assert row["reference"] == "torch_nchw" and row["ratio"] == row["ratio_nchw"] == 0.5
    assert "PyTorch float32 NCHW (the old reference) = reference" in [r["library"] for r in bt._table_rows([row], libs[:3])]
    row = bt._summarise("resnet20", _runs(mr=[50], torch_cl=[80]), libs[:2])  # --layouts channels_last
    assert row["reference"] == "torch_cl" and row["ratio"] == 50 / 80 and "ratio_nchw" not in row


def test_bench_train_without_torch_has_minires_rows_only(benchmark_script):
    bt = benchmark_script("bench_train")
    row = bt._summarise("resnet20", _runs(mr=[10, 30]), ["mr"])
    assert "reference" not in row and row["mr_img_s"] == 20
    assert [(r["library"], r["speed"]) for r in bt._table_rows([row], ["mr"])] == [("minires", None)]


def test_bench_recipe_reference_row_and_the_children_it_starts(benchmark_script):
    import argparse
    br = benchmark_script("bench_recipe")
    rows = [{"run": "mr", "library": "minires", "step_ms": 3000.0},
            {"run": "torch_cl", "library": "PyTorch float32 channels_last", "step_ms": 1500.0},
            {"run": "torch_nchw", "library": "PyTorch float32 NCHW (the old reference)", "step_ms": 2200.0},
            {"run": "torch_bf16", "library": "bf16", "step_ms": 440.0}]
    ref, layout = br._mark_reference(rows)
    assert layout == "channels_last" and ref is rows[1] and ref["library"].endswith(" = reference")
    assert [r["vs_reference"] for r in rows] == [2.0, 1.0, 2200 / 1500, 440 / 1500]
    args = argparse.Namespace(batch=512, steps=3, warmup=1, threads=2, profile_reps=2, amp=False, compile=False,
                              profile=False)
    cmd = lambda lib: br._child_cmd(lib, args, "cpu")[2:]  # noqa: E731 (after python and the script)
    assert cmd("mr")[:4] == ["--child", "mr", "--device", "cpu"] and "--layout" not in cmd("mr")
    assert cmd("torch_cl")[:4] == ["--child", "torch", "--layout", "channels_last"] and "--bf16" not in cmd("torch_cl")
    assert cmd("torch_nchw")[:4] == ["--child", "torch", "--layout", "NCHW"]
    assert cmd("torch_bf16")[:5] == ["--child", "torch", "--layout", "channels_last", "--bf16"]
    assert cmd("torch_cl")[cmd("torch_cl").index("--threads") + 1] == "2"


def test_bench_recipe_and_train_refuse_bad_options_before_running(benchmark_script, capsys):
    import pytest
    for script, argv, words in (("bench_recipe", ["--child", "torch", "--layout", "NHWC"], "--layout"),
                                ("bench_recipe", ["--threads", "0", "--no-torch"], "--threads"),
                                ("bench_train", ["--threads", "0", "--no-torch"], "--threads"),
                                ("bench_train", ["--layouts", "NHWC"], "--layouts: layouts must be some of"),
                                ("bench_recipe", ["--layouts", "channels_last,"], "--layouts: layouts must be some of")):
        with pytest.raises(SystemExit) as e:
            benchmark_script(script).main(argv)
        assert e.value.code == 2 and words in capsys.readouterr().err
