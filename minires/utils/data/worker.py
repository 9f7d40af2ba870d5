"""The DataLoader worker process: seeded, single-threaded, it turns the tasks it receives into batches.

Protocol (one pair of pipes per worker, minires.utils.data.worker_pool drives it):
- the main process sends (task id, index) tasks, a Resume (persistent workers, next epoch) or None (stop);
- the worker answers each task, in the order received, with the pickled (task id, batch), an ExceptionWrapper
  for an error, or an IterationEnd for a spent IterableDataset (later tasks then get no answer, as in PyTorch).
A thread of the worker sends the answers, so the worker goes on with its next task while the main process has
not read the last one yet. The worker stops on None, on the iterator's done event, or when its parent is gone.
"""
from __future__ import annotations

import os
import pickle
import queue
import random
import threading
import traceback
from dataclasses import dataclass

import numpy as np

from ... import creation, parallel
from .fetch import make_fetcher

POLL_S = 1.0  # how often an idle worker checks that its parent and its iterator are still there


class WorkerInfo:
    """What get_worker_info() returns inside a worker: id, num_workers, seed and this worker's dataset copy."""

    __slots__ = ("id", "num_workers", "seed", "dataset")

    def __init__(self, id: int, num_workers: int, seed: int, dataset):
        self.id, self.num_workers, self.seed, self.dataset = id, num_workers, seed, dataset

    def __repr__(self):
        return f"WorkerInfo(id={self.id}, num_workers={self.num_workers}, seed={self.seed}, dataset={self.dataset!r})"


_worker_info = None  # set in a worker process only


def get_worker_info() -> WorkerInfo | None:
    """In a DataLoader worker: its WorkerInfo (to shard an IterableDataset, say); in the main process: None."""
    return _worker_info


class ExceptionWrapper:
    """An exception caught in a worker, carried to the main process with its traceback's text."""

    def __init__(self, exc: BaseException, where: str):
        self.exc_type = type(exc)
        self.where = where
        self.text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))

    def reraise(self):
        """Raise it again in the main process: same type where it can be built from a message, else RuntimeError."""
        msg = f"Caught {self.exc_type.__name__} {self.where}.\nOriginal {self.text}"
        if self.exc_type is KeyError:
            msg = _KeyErrorMessage(msg)  # KeyError shows repr(message), which would flatten the traceback
        try:
            exc = self.exc_type(msg)
        except Exception:
            raise RuntimeError(msg) from None
        try:
            raise exc
        finally:
            del exc  # else this frame, held by the traceback, would hold the exception: a cycle, kept until gc


class _KeyErrorMessage(str):
    def __repr__(self):
        return str(self)


@dataclass
class IterationEnd:
    """A worker's IterableDataset is spent."""
    worker_id: int


@dataclass
class Resume:
    """Persistent workers: start the next epoch (the dataset's iterator again); answered by its own echo."""
    epoch: int


@dataclass
class WorkerArgs:
    """Everything a worker needs, sent once when it starts."""
    iterable: bool
    dataset: object
    auto_collation: bool
    collate_fn: object
    drop_last: bool
    base_seed: int
    worker_init_fn: object
    worker_id: int
    num_workers: int


def seed_worker(base_seed: int, worker_id: int) -> int:
    """Seed this process's generators for worker `worker_id`, as PyTorch does: minires's global generator and
    Python's random with base_seed + worker_id, NumPy's legacy global generator from (worker_id, base_seed)."""
    seed = base_seed + worker_id
    random.seed(seed)
    creation.manual_seed(seed)
    np.random.seed(np.random.SeedSequence([worker_id, base_seed]).generate_state(4))
    return seed


def _one_thread() -> None:
    """minires's kernels and BLAS on one thread: the workers together already use the cores."""
    parallel.set_num_threads(1)  # after a fork the thread pool is gone already (parallel's at-fork hook)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return
    threadpool_limits(1, user_api="blas")


class _Sender:
    """Sends pickled answers to the main process from a thread of their own."""

    def __init__(self, conn):
        self.conn = conn
        self.queue = queue.SimpleQueue()
        threading.Thread(target=self._run, daemon=True, name="minires-worker-sender").start()

    def _run(self):
        while True:
            payload = self.queue.get()
            if payload is None:
                return
            try:
                self.conn.send_bytes(payload)
            except OSError:  # the main process closed its end: it is shutting down
                return
            except BaseException:  # noqa: BLE001 - without its sender the worker is useless: end it, loudly
                traceback.print_exc()
                os._exit(1)  # the main process then reports this worker as exited (exit code 1)

    def put(self, task_id, data, where: str):
        try:
            payload = pickle.dumps((task_id, data), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:  # noqa: BLE001 - an unpicklable batch is the user's error, reported as such
            err = RuntimeError(f"the batch could not be pickled to send it to the main process: "
                               f"{type(exc).__name__}: {exc}")
            payload = pickle.dumps((task_id, ExceptionWrapper(err, where)), protocol=pickle.HIGHEST_PROTOCOL)
        self.queue.put(payload)

    def close(self):
        self.queue.put(None)


def _wrap(exc: BaseException, where: str) -> ExceptionWrapper:
    wrapper = ExceptionWrapper(exc, where)
    try:
        pickle.dumps(wrapper.exc_type)
    except Exception:  # noqa: BLE001 - a local exception class cannot travel: the main process gets RuntimeError
        wrapper.exc_type = RuntimeError
    return wrapper


def worker_loop(args: WorkerArgs, index_conn, result_conn, done_event) -> None:
    """The body of worker process args.worker_id (the target of its multiprocessing.Process)."""
    global _worker_info
    where = f"in DataLoader worker process {args.worker_id}"
    try:
        _one_thread()
        seed = seed_worker(args.base_seed, args.worker_id)
        _worker_info = WorkerInfo(args.worker_id, args.num_workers, seed, args.dataset)
        init_error = None
        try:
            if args.worker_init_fn is not None:
                args.worker_init_fn(args.worker_id)
            fetcher = make_fetcher(args.iterable, args.dataset, args.auto_collation, args.collate_fn,
                                   args.drop_last)
        except Exception as exc:  # noqa: BLE001 - reported with the first task, as PyTorch does
            init_error, fetcher = _wrap(exc, where), None
        sender = _Sender(result_conn)
        parent = os.getppid()
        ended = False
        while True:
            if not index_conn.poll(POLL_S):
                if done_event.is_set() or os.getppid() != parent:
                    break
                continue
            try:
                msg = index_conn.recv()
            except (EOFError, OSError):
                break
            if msg is None:
                break
            if done_event.is_set():
                continue  # the iterator is shutting down: its remaining tasks are not wanted
            if isinstance(msg, Resume):
                if args.iterable and init_error is None:
                    try:
                        fetcher = make_fetcher(True, args.dataset, args.auto_collation, args.collate_fn,
                                               args.drop_last)
                    except Exception as exc:  # noqa: BLE001
                        init_error = _wrap(exc, where)
                ended = False
                sender.put(msg, None, where)
                continue
            task_id, index = msg
            if init_error is not None:
                data, init_error = init_error, None
            elif ended:
                continue
            else:
                try:
                    data = fetcher.fetch(index)
                except StopIteration:
                    if not args.iterable:
                        data = _wrap(RuntimeError("StopIteration raised while fetching a batch"), where)
                    else:
                        data, ended = IterationEnd(args.worker_id), True
                except Exception as exc:  # noqa: BLE001 - sent to the main process, which raises it
                    data = _wrap(exc, where)
            sender.put(task_id, data, where)
        sender.close()
    except KeyboardInterrupt:
        pass  # Ctrl-C reaches every process of the group: the main process reports it and stops the workers
