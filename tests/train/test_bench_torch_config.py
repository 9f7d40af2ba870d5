"""The benchmarks' PyTorch configuration, decided without PyTorch: the CPU's bf16 units from /proc/cpuinfo
text, the faster of the two layouts, and which PyTorch runs are timed."""
import os
import subprocess
import sys

import pytest

from minires.bench import common, load

ZEN3 = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 7B13
flags\t\t: fpu vme de pse tsc msr sse sse2 ssse3 fma sse4_1 sse4_2 avx f16c avx2 bmi2 sha_ni
bugs\t\t: sysret_ss_attrs
"""
SAPPHIRE_RAPIDS = ("flags\t: fpu sse2 avx avx2 fma avx512f avx512bw avx512_bf16 avx512_fp16 amx_bf16 amx_tile "
                   "amx_int8\n")
COOPER_LAKE = "flags : avx2 avx512f avx512_bf16\n"
AMX_INT8_ONLY = "flags : avx512f amx_tile amx_int8\n"  # tiles, but no bf16 in them


def test_flags_are_read_from_the_flags_line_only():
    flags = common.cpu_flags(ZEN3)
    assert "avx2" in flags and "fma" in flags and "sysret_ss_attrs" not in flags and "AuthenticAMD" not in flags
    assert common.cpu_flags("model name : x\n") == frozenset()
    assert common.cpu_flags("Features : fp asimd bf16\n") == {"fp", "asimd", "bf16"}  # arm64's key


@pytest.mark.parametrize("text, units, has", [
    (ZEN3, (), False),
    (SAPPHIRE_RAPIDS, ("avx512_bf16", "amx_bf16", "amx_tile"), True),
    (COOPER_LAKE, ("avx512_bf16",), True),
    (AMX_INT8_ONLY, ("amx_tile",), False),
    ("flags : amx_bf16\n", ("amx_bf16",), False),  # bf16 tiles need the tile unit too
])
def test_bf16_hardware_is_avx512_bf16_or_amx_bf16_tiles(text, units, has):
    flags = common.cpu_flags(text)
    assert common.bf16_units(flags) == units
    assert common.has_bf16(flags) is has
    note = common.bf16_note(flags)
    if has:
        assert "is measured" in note and all(u in note for u in units)
    else:
        assert "lacks AVX512-BF16 and AMX" in note and "not measured" in note
        assert ("only amx_tile" in note) == (units == ("amx_tile",))


def test_the_bf16_row_is_timed_only_on_a_cpu_with_bf16_hardware():
    names = lambda text, device="cpu": [n for n, _, _ in common.torch_variants(common.cpu_flags(text), device)]  # noqa: E731
    assert names(ZEN3) == ["torch_cl", "torch_nchw"]
    assert names(SAPPHIRE_RAPIDS) == ["torch_cl", "torch_nchw", "torch_bf16"]
    assert names(SAPPHIRE_RAPIDS, "cuda:0") == ["torch_cl"]  # a GPU run's amp is float16; a run costs device time
    assert [(layout, bf16) for _, layout, bf16 in common.torch_variants(common.cpu_flags(SAPPHIRE_RAPIDS))] == [
        ("channels_last", False), ("NCHW", False), ("channels_last", True)]


def test_the_reference_is_the_faster_layout_and_a_tie_goes_to_the_first():
    assert common.faster_layout({"channels_last": 1504.0, "NCHW": 2202.0}) == ("channels_last", 1504.0)
    assert common.faster_layout({"channels_last": 9.5, "NCHW": 7.25}) == ("NCHW", 7.25)
    assert common.faster_layout({"channels_last": 3.0, "NCHW": 3.0}) == ("channels_last", 3.0)
    assert common.faster_layout({"NCHW": 3.0, "channels_last": 3.0}) == ("NCHW", 3.0)
    with pytest.raises(ValueError, match="no layouts"):
        common.faster_layout({})
    for bad in (0.0, -1.0, float("nan"), float("inf"), None):
        with pytest.raises(ValueError, match="NCHW took"):
            common.faster_layout({"channels_last": 1.0, "NCHW": bad})


def test_row_labels_name_the_precision_the_layout_and_the_old_reference():
    assert common.torch_reference_label("channels_last") == "PyTorch float32 channels_last"
    assert common.torch_reference_label("NCHW") == "PyTorch float32 NCHW (the old reference)"
    assert common.torch_reference_label("channels_last", bf16=True) == "PyTorch bf16 autocast channels_last (reference row)"


def test_a_layout_other_than_the_two_is_refused_by_name():
    class FakeTorch:  # the two attributes torch_memory_format reads
        channels_last, contiguous_format = "cl", "contiguous"
    assert common.torch_memory_format(FakeTorch, "channels_last") == "cl"
    assert common.torch_memory_format(FakeTorch, "NCHW") == "contiguous"
    with pytest.raises(ValueError, match="torch_memory_format.*'NHWC'"):
        common.torch_memory_format(FakeTorch, "NHWC")


def test_the_header_names_the_machines_bf16_units(monkeypatch):
    monkeypatch.setattr(common, "cpu_flags", lambda cpuinfo=None: frozenset(SAPPHIRE_RAPIDS.split()[1:]))
    text = common.header()
    assert "avx512f" in text and "CPU bf16 units: avx512_bf16, amx_bf16, amx_tile" in text
    monkeypatch.setattr(common, "cpu_flags", lambda cpuinfo=None: frozenset({"avx2", "fma"}))
    assert "avx2, fma; CPU lacks AVX512-BF16 and AMX" in common.header()


def test_the_layouts_asked_for_are_timed_and_amp_drops_the_bf16_row():
    spr = common.cpu_flags(SAPPHIRE_RAPIDS)
    names = lambda *a, **kw: [n for n, _, _ in common.torch_variants(spr, *a, **kw)]  # noqa: E731
    assert names("cpu", ["channels_last"]) == ["torch_cl", "torch_bf16"]
    assert names("cpu", ["NCHW"], amp=True) == ["torch_nchw"]
    assert names("cuda:0", ["NCHW", "channels_last"]) == ["torch_cl", "torch_nchw"]  # table order, not the order given
    for bad, words in ((["NHWC"], "got NHWC"), ([], "got none"), (["channels_last", "nchw"], "got channels_last, nchw")):
        with pytest.raises(ValueError, match=f"layouts must be some of channels_last, NCHW, {words}"):
            common.torch_variants(spr, "cpu", bad)


def test_the_header_warns_when_other_work_keeps_the_cores_busy():
    assert load.load_note(0.4, 2) == "load average 0.4 (1 min) on 2 logical cores"
    assert load.load_note(1.5, 2) == "load average 1.5 (1 min) on 2 logical cores"
    busy = load.load_note(7.9, 2)
    assert busy.startswith("load average 7.9 (1 min) on 2 logical cores: BUSY") and "flatter minires" in busy
    assert "BUSY" not in load.load_note(7.9, 16)
    # where the cores were sampled, their busy share decides, not a load average left by the run before
    quiet = load.load_note(1.9, 2, busy=0.03)
    assert quiet == "load average 1.9 (1 min) on 2 logical cores; other work held 3% of them over the half second before the run"
    assert "BUSY" in load.load_note(0.2, 2, busy=0.6)


def test_busy_share_sees_another_process_spinning():
    if not os.path.exists("/proc/stat"):
        pytest.skip("no /proc/stat on this system")  # the header then falls back to the load average
    own = load.busy_share(0.2)  # this process sleeping: its own time is left out
    assert own is not None and 0.0 <= own <= 1.0
    spin = subprocess.Popen([sys.executable, "-c", "import sys, time\nprint(flush=True)\nt = time.time()\n"
                             "while time.time() - t < 5: pass"], stdout=subprocess.PIPE)
    try:
        spin.stdout.readline()  # it is spinning
        share = load.busy_share(0.5)
    finally:
        spin.kill()
        spin.wait()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    assert share >= 0.8 / cores  # at least 80% of one of this process's cores
