"""The multi-process DataLoader iterator: workers make batches, the main process yields them in sampler order.

Task k (the k-th batch of indices from the sampler) goes to worker k % num_workers (skipping workers whose
IterableDataset is spent), and each worker answers its tasks in order, so the main process reads batch k from
that worker's pipe and nothing ever arrives out of order. prefetch_factor * num_workers tasks are in flight;
one more is sent each time a batch is yielded. The main process waits on the worker's pipe and its process
sentinel together: a worker that dies is reported at once, never waited for.
"""
from __future__ import annotations

import collections
import itertools
import multiprocessing
import pickle
import signal
import sys
import time
import weakref
from multiprocessing.connection import wait

try:
    import fcntl
except ImportError:  # not on Windows
    fcntl = None

from ... import creation
from .worker import ExceptionWrapper, IterationEnd, Resume, WorkerArgs, worker_loop

JOIN_TIMEOUT_S = 5.0  # a stopping worker finishes its current batch; after this it is terminated
FAILED_JOIN_S = 0.5  # after a timeout or a dead worker the others are stopped sooner: the iteration is over
WAIT_SLICE_S = 1.0  # without a timeout, how long one wait lasts before the worker's liveness is checked again


def default_context():
    """fork where the platform has it (Linux: workers start at once and share the parent's memory), else spawn."""
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if sys.platform.startswith("linux") and "fork" in methods else "spawn")


def draw_base_seed(generator) -> int:
    """The iterator's base seed: one int64 draw from `generator` (minires's global generator when None)."""
    return int(creation.numpy_generator(generator).integers(0, 2**63))


def _pipe_max_size() -> int:
    try:
        with open("/proc/sys/fs/pipe-max-size") as f:
            return int(f.read())
    except (OSError, ValueError):
        return 0


PIPE_BYTES = min(1 << 20, _pipe_max_size())  # Linux: a batch of 128 CIFAR images (1.5 MB) in 2 writes, not 24


def _widen(conn) -> None:
    """Enlarge a pipe's buffer where Linux allows it. Measured: the main process's CPU per image read from a
    worker 26 -> 17 us (CIFAR batches of 128), fewer wake-ups of the reader and the sender."""
    if PIPE_BYTES > 65536 and hasattr(fcntl, "F_SETPIPE_SZ"):  # hasattr(None, ...) is False
        try:
            fcntl.fcntl(conn.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        except OSError:
            pass  # the system's limit on pipe memory is reached: keep the default size


class _Worker:
    """One worker process and the main process's ends of its two pipes."""

    def __init__(self, ctx, args: WorkerArgs, done_event):
        index_r, self.index_w = ctx.Pipe(duplex=False)
        self.result_r, result_w = ctx.Pipe(duplex=False)
        _widen(self.result_r)
        self.id = args.worker_id
        self.process = ctx.Process(target=worker_loop, args=(args, index_r, result_w, done_event), daemon=True,
                                   name=f"minires-dataloader-{args.worker_id}")
        try:
            self.process.start()
        except (pickle.PicklingError, AttributeError, TypeError) as exc:
            if ctx.get_start_method() == "fork":
                raise
            raise type(exc)(f"DataLoader: worker processes started by {ctx.get_start_method()!r} receive the dataset, "
                            f"collate_fn and worker_init_fn pickled, and one of them cannot be pickled ({exc}); "
                            f"define them at the top level of a module (no lambdas or local functions)") from exc
        # Only the worker keeps its ends, so its death closes them (workers forked later do not inherit them).
        index_r.close()
        result_w.close()

    def send(self, msg) -> None:
        try:
            self.index_w.send(msg)
        except OSError:  # the worker is gone; its death is reported when its answer is awaited
            pass

    def died(self) -> RuntimeError:
        self.process.join(0.1)  # collect the exit code
        code = self.process.exitcode
        how = f"exit code {code}"
        if code is not None and code < 0:
            try:
                how = f"killed by signal {signal.Signals(-code).name}"
            except ValueError:
                how = f"killed by signal {-code}"
            if -code == signal.SIGKILL:
                how += " (the out-of-memory killer, or a kill -9)"
        return RuntimeError(f"DataLoader worker {self.id} (pid {self.process.pid}) exited unexpectedly ({how}); "
                            f"its batches are lost and the iteration stops")


def _loads(payload: bytes, worker: _Worker):
    """A worker's answer: (task id, batch) or a marker. An answer that cannot be unpickled here (the worker's
    classes must be importable in the main process too) is an error of the task awaited, task id None: a
    worker answers its tasks in order, so it is that task's answer."""
    try:
        return pickle.loads(payload)
    except Exception as exc:  # noqa: BLE001 - reported as the task's error, the iteration keeps its order
        err = RuntimeError(f"the batch of DataLoader worker {worker.id} could not be unpickled in the main process: "
                           f"{type(exc).__name__}: {exc}")
        return None, ExceptionWrapper(err, f"in the main process, reading from worker {worker.id}")


class MultiProcessIter:
    """Iterator of a DataLoader with num_workers > 0 (made by DataLoader.__iter__)."""

    def __init__(self, loader):
        self._loader = weakref.ref(loader)  # the loader holds a persistent iterator: no cycle back
        self._iterable = loader._iterable_kind
        self._num_workers = loader.num_workers
        self._prefetch = loader.prefetch_factor
        self._timeout = loader.timeout
        self._persistent = loader.persistent_workers
        self._sampler_iter = iter(loader._index_sampler)
        self._base_seed = draw_base_seed(loader.generator)
        self._workers = []
        self._closed = False
        ctx = loader.multiprocessing_context or default_context()
        self._done = ctx.Event()
        try:
            for i in range(self._num_workers):
                args = WorkerArgs(self._iterable, loader.dataset, loader._auto_collation, loader.collate_fn,
                                  loader.drop_last, self._base_seed, loader.worker_init_fn, i, self._num_workers)
                self._workers.append(_Worker(ctx, args, self._done))
        except BaseException:
            self._shutdown()
            raise
        self._epoch = 0
        self._start_epoch()

    def __iter__(self):
        return self

    def __len__(self):
        return len(self._loader())

    # ---- tasks --------------------------------------------------------------------------------------------

    def _start_epoch(self) -> None:
        self._active = [True] * self._num_workers
        self._cycle = itertools.cycle(range(self._num_workers))
        self._tasks = collections.deque()  # (task id, worker) in flight, oldest first
        self._next_task = 0
        for _ in range(self._prefetch * self._num_workers):
            self._put_task()

    def _put_task(self) -> None:
        """Send the sampler's next index to the next worker that still has data (round robin)."""
        try:
            index = next(self._sampler_iter)
        except StopIteration:
            return
        for _ in range(self._num_workers):
            w = next(self._cycle)
            if self._active[w]:
                break
        else:
            return
        self._workers[w].send((self._next_task, index))
        self._tasks.append((self._next_task, w))
        self._next_task += 1

    def _receive(self, worker: _Worker):
        """The next answer of `worker`: waits for it, raising on the DataLoader's timeout or the worker's death."""
        start = time.monotonic()
        while True:
            if self._timeout > 0:
                left = self._timeout - (time.monotonic() - start)
                if left <= 0:
                    self._shutdown(FAILED_JOIN_S)
                    raise RuntimeError(f"DataLoader timed out after {self._timeout} seconds waiting for worker "
                                       f"{worker.id}")
                ready = wait([worker.result_r, worker.process.sentinel], min(left, WAIT_SLICE_S))
            else:
                ready = wait([worker.result_r, worker.process.sentinel], WAIT_SLICE_S)
            if not ready:
                continue
            if worker.result_r in ready or worker.result_r.poll():  # an answer sent just before dying counts
                try:
                    payload = worker.result_r.recv_bytes()
                except (EOFError, OSError):
                    pass  # the worker died during the message: reported below
                else:
                    return _loads(payload, worker)
            error = worker.died()
            self._shutdown(FAILED_JOIN_S)
            raise error

    def __next__(self):
        if self._closed:
            raise StopIteration
        while self._tasks:
            task_id, w = self._tasks[0]
            if not self._active[w]:  # a task sent to a worker whose data ran out: it is never answered
                self._tasks.popleft()
                continue
            answer_id, data = self._receive(self._workers[w])
            assert answer_id in (task_id, None), f"worker {w} answered task {answer_id}, expected {task_id}"
            self._tasks.popleft()
            if isinstance(data, IterationEnd):
                self._active[w] = False
                self._put_task()
                continue
            self._put_task()
            if isinstance(data, ExceptionWrapper):
                data.reraise()
            return data
        if not self._persistent:
            self._shutdown()
        raise StopIteration

    def _reset(self, loader) -> None:
        """Persistent workers, next epoch: a new sampler pass; every worker drops what it still had in flight."""
        self._sampler_iter = iter(loader._index_sampler)
        self._epoch += 1
        for worker in self._workers:
            worker.send(Resume(self._epoch))
        for worker in self._workers:
            while True:  # answers of the last epoch's unread tasks come first; the echo of Resume ends them
                answer_id, _ = self._receive(worker)
                if isinstance(answer_id, Resume) and answer_id.epoch == self._epoch:
                    break
        self._start_epoch()

    # ---- shutdown -----------------------------------------------------------------------------------------

    def _shutdown(self, join_timeout: float = JOIN_TIMEOUT_S) -> None:
        """Stop every worker (done event, then None), join them, terminate any that does not stop in time."""
        if self._closed:
            return
        self._closed = True
        self._done.set()
        for worker in self._workers:
            worker.send(None)
        for worker in self._workers:
            worker.result_r.close()  # a worker blocked sending an answer is released
        deadline = time.monotonic() + join_timeout
        for worker in self._workers:
            worker.process.join(max(0.0, deadline - time.monotonic()))
        for worker in self._workers:
            if worker.process.is_alive():
                worker.process.terminate()
                worker.process.join(1.0)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
            worker.index_w.close()

    def __del__(self):
        try:
            self._shutdown()
        except Exception:  # noqa: BLE001 - at interpreter exit parts of multiprocessing may already be gone
            pass

