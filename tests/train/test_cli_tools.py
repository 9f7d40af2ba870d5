"""`minires bench` and the examples' command lines: help that says what each option does, and every
mistake one line with exit code 2, before anything is measured or written."""
import pytest

from minires.bench import kernels
from minires.cli import main

KERNELS = ["conv2d", "batch_norm", "relu", "add_relu", "max_pool2d", "avg_pool2d", "global avg pool", "linear",
           "cross_entropy"]


def bench(argv, capsys):
    """(exit code, stdout, stderr) of `minires bench ARGV`."""
    code = main(["bench"] + argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_bench_help_shows_each_option_its_default_and_the_kernel_names(capsys):
    code, out, _ = bench(["--help"], capsys)
    assert code == 0
    flat = " ".join(out.split())  # argparse wraps the help lines
    for text in ("--batch N images per call (N of every shape) (default: 128)",
                 "--repeats REPEATS timed calls per kernel (the median is shown) (default: 7)",
                 "--warmup WARMUP untimed calls per kernel before the timed ones (default: 2)",
                 "(the kernels: " + ", ".join(KERNELS) + ")"):
        assert text in flat
    assert "(default: None)" not in flat and "(default: False)" not in flat


def test_the_kernel_names_are_the_rows_names_without_their_shapes():
    assert kernels.kernel_names() == KERNELS
    rows = [name for name, *_ in kernels.build_cases(4)]
    assert all(any(name.startswith(k + " ") for k in KERNELS) for name in rows)


@pytest.mark.parametrize("argv, message", [
    (["--batch", "0"], "--batch must be >= 1, got 0"),
    (["--repeats", "0"], "--repeats must be >= 1, got 0"),
    (["--warmup", "-1"], "--warmup must be >= 0, got -1"),
    (["--ceiling-scale", "0"], "--ceiling-scale must be a positive number, got 0.0"),
    (["--only", "nosuchkernel"], "--only 'nosuchkernel' matches no kernel; the kernels: " + ", ".join(KERNELS)),
    (["--device", "tpu"], "--device tpu: minires runs on 'cpu' and 'cuda'"),
    (["--batch", "x"], "argument --batch: invalid int value: 'x'"),
])
def test_bench_mistakes_are_one_line_exit_2_and_write_nothing(argv, message, tmp_path, capsys):
    out = tmp_path / "b"
    code, stdout, err = bench(argv + ["--no-torch", "--out", str(out)], capsys)
    assert code == 2 and err.count("\n") == 1 and err.startswith("minires bench: error: ")
    assert message in err and "Traceback" not in err
    assert stdout == "" and not out.exists()  # nothing measured (no header printed), nothing written


def test_bench_out_must_be_a_writable_folder(tmp_path, capsys):
    afile = tmp_path / "file"
    afile.write_text("keep")
    for out, message in ((afile, f"--out {afile} is a file, not a folder"),
                         (afile / "sub", f"--out {afile / 'sub'}: {afile} is not a writable folder")):
        code, stdout, err = bench(["--only", "relu", "--no-torch", "--out", str(out)], capsys)
        assert code == 2 and err.count("\n") == 1 and message in err and stdout == ""
    assert afile.read_text() == "keep"


def test_bench_chart_of_times_too_small_for_a_log_axis(tmp_path):
    pytest.importorskip("matplotlib")
    import warnings
    rows = [{"kernel": "relu (2, 64, 32, 32)", "pass": "fwd+bwd", "cpu_ms": 0.0},
            {"kernel": "cross_entropy 2x1000", "pass": "fwd+bwd", "cpu_ms": 0.0}]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib's "Data has no positive values, and therefore cannot be log-scaled"
        kernels._plot(rows, str(tmp_path / "b.png"), ["cpu"], 2)
    assert (tmp_path / "b.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_timers_refuse_a_median_of_no_calls():
    from minires.bench import common
    for timer, args in ((common.median_ms, (lambda: None,)), (common.interleaved_ms, ([lambda: None],))):
        with pytest.raises(ValueError, match="repeats must be >= 1 and warmup >= 0, got repeats=0, warmup=2"):
            timer(*args, repeats=0)
    assert common.median_ms(lambda: None, repeats=1, warmup=0) >= 0
