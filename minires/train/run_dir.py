"""The run directory (--out): what a run writes there, the checks on the path, and the lock that keeps
two runs out of one directory at a time."""
from __future__ import annotations

import os

try:
    import fcntl
except ImportError:  # not on Windows: runs there go unlocked
    fcntl = None

# Files a run writes into its directory, each through io.atomic_write_bytes (temp file + rename).
RUN_FILES = ("last.safetensors", "best.safetensors", "metrics.jsonl", "metrics.csv", "curves.png",
             "final_eval.json", "confusion_matrix.png")
LOCK_FILE = ".minires.lock"  # holds the pid of the run that has the lock (for the message to another run)


def check_out_path(out_dir) -> None:
    """ValueError when --out, or a folder above it, is an existing file (makedirs would fail on it)."""
    path = os.path.abspath(os.fspath(out_dir))
    while not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            return
        path = parent
    if not os.path.isdir(path):
        which = "--out" if path == os.path.abspath(os.fspath(out_dir)) else f"--out {out_dir}: {path}"
        raise ValueError(f"{which} is a file, not a folder: give --out a folder for the run (it is created "
                         f"if missing)")


def holds_a_run(out_dir) -> bool:
    """Whether out_dir has checkpoints or metrics of an earlier run."""
    return any(os.path.exists(os.path.join(out_dir, name)) for name in
               ("last.safetensors", "best.safetensors", "metrics.jsonl"))


def refuse_a_run(out_dir) -> None:
    if holds_a_run(out_dir):
        raise ValueError(f"{out_dir} already holds a run: continue it with --resume, or start over there with "
                         f"--overwrite")


def remove_run_files(out_dir) -> None:
    """--overwrite: delete the files of the run in out_dir."""
    for name in RUN_FILES:
        if os.path.exists(os.path.join(out_dir, name)):
            os.remove(os.path.join(out_dir, name))


def remove_stale_temp_files(out_dir, log=print) -> None:
    """Delete `.NAME.XXXX.tmp` leftovers of atomic writes interrupted by a crash (a SIGKILL skips their cleanup)."""
    for entry in os.listdir(out_dir):
        if entry.endswith(".tmp") and any(entry.startswith(f".{name}.") for name in RUN_FILES):
            try:
                os.unlink(os.path.join(out_dir, entry))
                log(f"removed {entry}, left by an interrupted write")
            except OSError:
                pass


# realpath -> [file descriptor, holders]: Trainers of one process share their directory's lock (a
# second flock from this process would be refused by the first), other processes are kept out.
_HELD: dict = {}


class RunLock:
    """An exclusive flock on OUT/.minires.lock while a run trains there.

    The lock belongs to the open file descriptor, so the kernel drops it when the process ends, a
    SIGKILL included: a killed run never leaves a stale lock (the file stays, unlocked)."""

    def __init__(self, out_dir):
        self.out_dir, self.held = os.fspath(out_dir), False

    def _key(self) -> str:
        return os.path.realpath(self.out_dir)

    def check(self) -> None:
        """ValueError when another process holds the lock now (creates nothing)."""
        path = os.path.join(self.out_dir, LOCK_FILE)
        if fcntl is None or self.held or self._key() in _HELD or not os.path.isfile(path):
            return
        fd = os.open(path, os.O_RDONLY)
        try:
            self._try_lock(fd)
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def acquire(self) -> None:
        """Take the lock (creating OUT and the lock file), or ValueError naming the process that has it."""
        if fcntl is None or self.held:
            return
        key = self._key()
        if key not in _HELD:
            os.makedirs(self.out_dir, exist_ok=True)
            fd = os.open(os.path.join(self.out_dir, LOCK_FILE), os.O_RDWR | os.O_CREAT, 0o644)
            try:
                self._try_lock(fd)
            except BaseException:
                os.close(fd)
                raise
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            _HELD[key] = [fd, 0]
        _HELD[key][1] += 1
        self.held = True

    def release(self) -> None:
        """Give the lock back (the last holder in this process unlocks the file)."""
        if not self.held:
            return
        self.held = False
        entry = _HELD.get(self._key())
        if entry is not None:
            entry[1] -= 1
            if entry[1] <= 0:
                del _HELD[self._key()]
                os.close(entry[0])  # closing the descriptor drops the flock

    def _try_lock(self, fd) -> None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                with open(os.path.join(self.out_dir, LOCK_FILE), encoding="ascii", errors="replace") as f:
                    pid = f.read().strip()
            except OSError:
                pid = ""
            who = f"process {pid}" if pid.isdigit() else "another process"
            raise ValueError(f"--out {self.out_dir} is in use by another minires train ({who}): wait for it to "
                             f"end, or give this run another --out") from None
