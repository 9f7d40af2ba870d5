"""keep_freed_memory: applies on Linux/glibc, honours MINIRES_KEEP_MEMORY=0, and never raises."""
import subprocess
import sys

import pytest

CODE = "from minires.train.memory import keep_freed_memory as k; print(k())"


def _run(env_value):
    import os
    env = dict(os.environ)
    env.pop("MINIRES_KEEP_MEMORY", None)
    if env_value is not None:
        env["MINIRES_KEEP_MEMORY"] = env_value
    return subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, env=env).stdout.strip()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt is Linux-only")
def test_keep_freed_memory_applies_and_can_be_turned_off():
    import ctypes.util
    glibc = ctypes.util.find_library("c") is not None
    assert _run(None) == str(glibc)
    assert _run("0") == "False"
