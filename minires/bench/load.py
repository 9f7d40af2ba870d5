"""How busy the machine is before a benchmark: the line the benchmarks' header prints about the load."""
from __future__ import annotations

import os
import time


# NOTE: measured on the 2-vCPU AMD EPYC at load average ~7.5 (five other jobs), resnet20 batch 64 training steps
# in turns: PyTorch channels_last 8.9 / 15.7 img/s with OpenMP's default spin-waits, 97.8 / 68.4 with
# OMP_WAIT_POLICY=PASSIVE, minires 63.3 / 50.0 / 39.3 / 43.5. A busy machine's ratios say nothing of a quiet one's.
def busy_share(seconds: float = 0.5):
    """The share (0 to 1) of this process's cores' time that other processes (and the hypervisor: steal) used
    over the next `seconds`, from /proc/stat less this process's own CPU time; None where there is no /proc/stat.

    NOTE: the 1-minute load average alone cannot tell other work from the run just before this one (a
    2-thread benchmark leaves it near 2 for a minute), so the header samples the cores themselves."""
    try:  # the cores this process may run on (a container or taskset may give it a few of the host's)
        mine = {f"cpu{i}" for i in os.sched_getaffinity(0)}
    except AttributeError:  # no sched_getaffinity: the machine's total line
        mine = None

    def sample():
        total = idle = 0
        with open("/proc/stat") as f:
            for line in f:
                name, *fields = line.split() or [""]
                if (name in mine) if mine is not None else (name == "cpu"):
                    v = [int(x) for x in fields[:8]]  # user nice system idle iowait irq softirq steal
                    total, idle = total + sum(v), idle + v[3] + v[4]
        return total, idle, time.process_time()
    try:
        total0, idle0, own0 = sample()
        time.sleep(seconds)
        total1, idle1, own1 = sample()
    except (OSError, ValueError, IndexError):
        return None
    total = total1 - total0
    if total <= 0:
        return None
    own = (own1 - own0) * os.sysconf("SC_CLK_TCK")
    return min(1.0, max(0.0, (total - (idle1 - idle0) - own) / total))


def load_note(load1: float, cores: int, busy=None) -> str:
    """The header's line on the machine's load: the 1-minute load average and, where measured, the share of
    the cores other work held just before the run (busy_share), with a warning once other work keeps the
    cores busy (PyTorch's OpenMP threads spin-wait, and lose most when they share the cores)."""
    line = f"load average {load1:.1f} (1 min) on {cores} logical cores"
    if busy is not None:
        line += f"; other work held {busy:.0%} of them over the half second before the run"
    if (busy > 0.25) if busy is not None else (load1 > 0.75 * cores):
        line += (": BUSY - other work shares the cores; PyTorch's spin-waiting OpenMP threads slow down far more "
                 "than minires's, so minires/PyTorch ratios from this run flatter minires")
    return line
