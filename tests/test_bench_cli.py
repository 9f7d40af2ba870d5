"""`minires bench` reaches benchmarks/bench_kernels.py and writes its JSON and Markdown outputs."""
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
