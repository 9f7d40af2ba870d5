"""The Trainer behind `minires train`: CIFAR-10 data, model, optimizer, schedule, loop, checkpoints.

Under `mpiexec -n N` (minires.distributed) the same Trainer runs on every process: each trains on its
part of every global batch, gradients are summed over the processes, evaluation is split over them
and summed; rank 0 alone writes files and logs.
"""
from __future__ import annotations

import dataclasses
import math
import os
import sys
import time
import zlib

from .. import __version__, backend, distributed, parallel
from ..checkpoint import CheckpointError, load_checkpoint, save_checkpoint, save_weights
from ..creation import manual_seed, set_rng_state
from ..data import DataLoader
from ..optim import GradScaler
from .. import recipes
from . import plots, run_dir
from .config import TrainConfig, apply_recipe
from .datasets import check_split, load_datasets, shard
from .evaluation import evaluate, report_on, write_report
from .metrics import format_history, write_history
from .resume import lengthened_scheduler_state, merge_saved_config, resume_command
from .run_dir import RunLock, check_out_path, holds_a_run, refuse_a_run, remove_run_files, remove_stale_temp_files
from .run_info import end_line, start_block
from .step import TrainingDiverged, first_bad_grad, grad_sumsq, train_step
from .weights import freeze_backbone, load_pretrained


class Trainer:
    """Train one model on CIFAR-10 as a TrainConfig says, with checkpoints and metrics in config.out.

    `comm` (default minires.distributed.world()) is the run's processes; every start-up error is
    raised on all of them together (comm.agree), so no process is left waiting for another."""

    def __init__(self, config: TrainConfig, log=print, comm=None):
        self.comm = comm = comm if comm is not None else distributed.world(timeout=config.dist_timeout)
        self.log = log = log if comm.rank == 0 else _quiet
        self.last_path = os.path.join(config.out, "last.safetensors")
        self.best_path = os.path.join(config.out, "best.safetensors")
        # Every process must run the same command: rank 0's options (and minires version) are the reference.
        distributed.check_same_run(comm, {"minires version": __version__, **dataclasses.asdict(config)})
        self.lock = RunLock(config.out)  # one run at a time in config.out (rank 0 takes it, once all is checked)
        comm.agree(lambda: (check_out_path(config.out), self.lock.check()), root_only=True)
        resume_state = comm.agree(lambda: self._read_checkpoint(config), root_only=True)  # rank 0's files
        self.lengthened = False  # --resume --epochs N trains the run past its saved epochs
        if resume_state is not None:
            config, self.lengthened = comm.agree(lambda: merge_saved_config(config, resume_state["extra"]["config"],
                                                                            log))
        if config.data is not None:  # saved as an absolute path: --resume from another folder finds it
            config = dataclasses.replace(config, data=os.path.abspath(os.path.expanduser(config.data)))
        comm.agree(lambda: config.validate(check_init_from=resume_state is None))
        self.recipe = recipes.get(config.recipe)  # what the run's recipe decides (the classic run without one)
        config = comm.agree(lambda: apply_recipe(config, self.recipe, log))
        if resume_state is None and not config.resume and not config.overwrite:
            comm.agree(lambda: refuse_a_run(config.out), root_only=True)
        self.config = c = config
        self.step = 0  # steps done in the current epoch (for the message on an interrupt)
        self._steps_run = 0  # optimizer steps taken by this Trainer (the parameter check's clock)
        self.device = comm.agree(lambda: backend.parse_device(distributed.local_device(c.device, comm)))
        if comm.size > 1:  # the node's cores shared out: minires's threads and BLAS's
            cores = distributed.cores_per_process(comm)
            if not os.environ.get("MINIRES_NUM_THREADS"):
                parallel.set_num_threads(cores)
            distributed.limit_blas_threads(cores)

        # Rank 0 first (a download, the decode cache), then the others from its files.
        self.train_set, self.test_set = comm.root_first(
            lambda: load_datasets(c.data, c.limit_train, c.limit_test, c.seed, cache=c.cache))
        distributed.check_same_run(comm, {"train": _fingerprint(self.train_set), "test": _fingerprint(self.test_set)},
                                   what="data (same --data, --limit-train, --limit-test on every node)")
        comm.agree(lambda: check_split(c, len(self.train_set), comm.size, resumed=resume_state is not None,
                                           drop_last=self.recipe.drop_last))
        self.classes = list(self.train_set.classes)
        size = int(self.train_set.data.shape[1])
        self.train_loader = DataLoader(self.train_set, batch_size=c.batch_size, shuffle=True, seed=c.seed,
                                       transform=self.recipe.transforms(c, size, train=True), device=self.device,
                                       num_replicas=comm.size, rank=comm.rank, drop_last=self.recipe.drop_last)
        if len(self.train_loader) == 0:  # drop_last with fewer images than one batch: no step at all
            comm.agree(lambda: _no_steps(c, len(self.train_set)))
        # Evaluation: each process takes a contiguous part of the test set; the results are summed.
        self.test_loader = DataLoader(shard(self.test_set, comm.rank, comm.size), shuffle=False, seed=c.seed,
                                      batch_size=-(-c.eval_batch_size // comm.size), device=self.device,
                                      transform=self.recipe.transforms(c, size, train=False))

        manual_seed(c.seed)
        self.model = self.recipe.build_model(c, len(self.classes))
        if resume_state is None:
            self.recipe.prepare(self.model, self.train_set, c)
        if c.init_from and resume_state is None:
            comm.agree(lambda: load_pretrained(self.model, c.init_from, log, model_name=c.model))
        if c.sync_bn and comm.size > 1:  # in one process --sync-bn changes nothing
            distributed.convert_sync_batchnorm(self.model, comm)
        self.model.to(self.device)
        if c.freeze_backbone:
            freeze_backbone(self.model)
        self.optimizer = self.recipe.optimizer(self.model, c)
        self.total_steps = self.recipe.total_steps(c, len(self.train_loader))
        self.epochs_to_run = -(-self.total_steps // len(self.train_loader))  # the last one may end early
        self.scheduler = self.recipe.scheduler(self.optimizer, c, self.total_steps)
        self.loss_fn = self.recipe.loss_fn(c)
        self.scaler = GradScaler(enabled=c.amp)
        self.recipe.attach(self.model)

        self.epoch, self.history, self.best_acc = 0, [], -1.0
        if resume_state is not None:
            comm.agree(lambda: self._restore(resume_state))
            self.epoch = resume_state["epoch"]
            self.history = resume_state["extra"]["history"]
            self.best_acc = resume_state["extra"]["best_acc"]
            if resume_state["extra"].get("scaler") is not None:
                self.scaler.load_state_dict(resume_state["extra"]["scaler"])
            log(f"resumed {self.last_path} at epoch {self.epoch}/{c.epochs:g}")
            saved = resume_state["extra"]["config"]
            if saved.get("sync_bn", False) != c.sync_bn and comm.size > 1:
                log(f"--resume: batch norm now {'over the global batch (--sync-bn)' if c.sync_bn else 'per process'}"
                    f", where the run trained {'per process' if c.sync_bn else 'with --sync-bn'}")
            saved_n = resume_state["extra"].get("world_size", 1)
            if saved_n != comm.size:
                log(f"--resume: the run trained on {saved_n} process(es) goes on on {comm.size}; the data order and "
                    f"the global batch of {c.batch_size} stay the same"
                    + ("" if c.sync_bn or comm.size == 1 else "; batch-norm statistics now come from "
                       f"{c.batch_size // comm.size} images per process (--sync-bn makes them the global batch's)"))
        comm.agree(self.lock.acquire, root_only=True)  # every check passed: the run starts here
        if resume_state is None and comm.rank == 0 and holds_a_run(c.out):  # --overwrite: the old run's files go now
            remove_run_files(c.out)
            log(f"--overwrite: removed the run in {c.out}; starting afresh")
        log(start_block(self))
        # Data parallel: every process starts from rank 0's weights, and sums its gradients with the others'.
        distributed.broadcast_parameters(self.model, comm)
        self.grad_sync = None
        if comm.size > 1:
            self.grad_sync = distributed.GradientSync([p for g in self.optimizer.param_groups for p in g["params"]],
                                                      comm)
            log(f"data parallel: {comm.size} processes, {c.batch_size // comm.size} images each per step of "
                f"{c.batch_size}; {self.grad_sync}; {parallel.get_num_threads()} thread(s) per process"
                + ("; batch norm over the global batch" if c.sync_bn else ""))

    def _read_checkpoint(self, config):
        """The saved state to resume (None for a fresh run): rank 0 reads it, the others get it over MPI."""
        if not config.resume:
            return None
        if not os.path.isfile(self.last_path):
            # A run killed before its first checkpoint: nothing to continue, so start it afresh.
            self.log(f"--resume: no checkpoint at {self.last_path} yet; starting a fresh run")
            return None
        return load_checkpoint(self.last_path)

    def _restore(self, state) -> None:
        """Model, optimizer, scheduler and RNG from a checkpoint's contents (as load_checkpoint does)."""
        if state["optimizer"] is None or state["scheduler"] is None:
            raise CheckpointError(f"checkpoint {self.last_path!r} holds no optimizer or scheduler state")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        scheduler = state["scheduler"]
        if self.lengthened:
            scheduler = lengthened_scheduler_state(scheduler, self.config.schedule, self.total_steps)
        self.scheduler.load_state_dict(scheduler)
        self.recipe.load_state_dict(state["arrays"])
        set_rng_state(state["rng_state"])

    # ---- training -------------------------------------------------------------------------------
    def _set_train_mode(self) -> None:
        if self.config.freeze_backbone:
            self.model.eval()  # NOTE: a frozen backbone keeps its BatchNorm running statistics too
            self.model.fc.train()
        else:
            self.model.train()

    def train_epoch(self, epoch: int) -> dict:
        """One pass over the training set; raises TrainingDiverged on a non-finite loss or gradient."""
        self._set_train_mode()
        self.recipe.start_epoch(self.model, epoch)
        self.train_loader.set_epoch(epoch)
        sizes = self.train_loader.batch_sizes()  # global batch sizes
        done = epoch * len(self.train_loader)  # steps of the earlier epochs
        n_batches = min(len(sizes), self.total_steps - done)  # a fractional last epoch ends early
        bar = self._progress(n_batches, f"epoch {epoch + 1}/{self.epochs_to_run}")
        total_loss, correct, seen, skipped, start = 0.0, 0, 0, 0, time.perf_counter()
        try:
            for step, (x, y) in enumerate(self.train_loader):
                if step == n_batches:
                    break
                self.comm.where = f"epoch {epoch + 1}, step {step + 1}/{n_batches}"
                try:  # loss and correct count: the global batch's (summed over the processes)
                    # a summed loss adds up over the processes as it is; a mean one by each part's share
                    share = 1.0 if self.recipe.sum_loss else len(y) / sizes[step]
                    result = train_step(self.model, self.loss_fn, self.optimizer, x, y, self.scaler,
                                        sync=self.grad_sync, share=share)
                except TrainingDiverged as exc:  # every process sees the same loss and gradients: all stop
                    loss = f" (loss {exc.loss:.4g})" if math.isfinite(exc.loss) else ""
                    stop = TrainingDiverged(f"{exc} at epoch {epoch + 1}, step {step + 1}/{n_batches}{loss}; "
                                            f"stopping. The last good checkpoint is kept: {self._last_good()}",
                                            exc.loss)
                    stop.all_ranks = True
                    raise stop from None
                self.scheduler.step()
                self.recipe.after_step(self.model, done + step + 1, self.total_steps)
                self.step = step + 1
                self._steps_run += 1
                self._check_agreement()
                total_loss += result.loss if self.recipe.sum_loss else result.loss * sizes[step]
                correct += result.correct
                skipped += result.skipped
                seen += sizes[step]
                bar.update(loss=total_loss / seen, acc=correct / seen,
                           ips=seen / max(time.perf_counter() - start, 1e-9))
        finally:
            bar.close()
        elapsed = time.perf_counter() - start
        if skipped:
            self.log(f"amp: {skipped} step(s) skipped for overflowing float16 gradients; "
                     f"loss scale now {self.scaler.get_scale():g}")
        return {"train_loss": total_loss / seen, "train_acc": correct / seen,
                "images_per_s": seen / elapsed, "train_time_s": elapsed}

    def _check_agreement(self) -> None:
        """After the first step (and every --check-sync-every K): the processes' weights, bitwise."""
        k = self.config.check_sync_every
        if self.comm.size > 1 and (self._steps_run == 1 or (k and self._steps_run % k == 0)):
            distributed.check_parameters_agree(self.model, self.comm, buffers=self.config.sync_bn,
                                               when=f"after {self._steps_run} step(s) ({self.comm.where})")

    def _grad_sumsq(self):
        return grad_sumsq(self.optimizer)

    def _first_bad_grad(self) -> str:
        return first_bad_grad(self.model)

    def interrupted(self) -> str:
        """What to tell a user who stopped the run (Ctrl-C): where, what is saved, how to go on."""
        where = f"stopped at epoch {self.epoch + 1}, step {self.step}/{len(self.train_loader)}"
        if os.path.exists(self.last_path):
            return (f"{where}; last checkpoint at {self.last_path} (epoch {self.epoch}); "
                    f"continue with: {resume_command(self.config, self.comm.size)}")
        return f"{where}; no checkpoint yet (no epoch finished), so nothing to continue"

    def _last_good(self) -> str:
        return f"{self.last_path} (epoch {self.epoch})" if os.path.exists(self.last_path) else "none (no epoch finished)"

    def _progress(self, total, desc):
        return _Progress(total, desc, self.config.progress and self.comm.rank == 0, self.log)

    def fit(self, max_epochs: int | None = None) -> dict:
        """Train to config.epochs (at most max_epochs more in this call); returns the final report."""
        c = self.config
        if self.comm.rank == 0:
            self.lock.acquire()  # again, where an earlier fit() gave it back
            os.makedirs(c.out, exist_ok=True)
            remove_stale_temp_files(c.out, self.log)
        epochs = self.epochs_to_run  # a fractional last epoch counts as one
        end = epochs if max_epochs is None else min(epochs, self.epoch + max_epochs)
        # NOTE: BLAS at one thread for the whole run, so that the kernels split their GEMMs over the
        # cores themselves (minires.parallel); holding it per call would cost a BLAS wake-up each time.
        try:
            with parallel.hold_blas():
                while self.epoch < end:
                    self._run_epoch()
                return self.final_report() if self.epoch >= epochs else {}
        finally:
            self.lock.release()

    def _run_epoch(self) -> None:
        """Train and evaluate one epoch, then write best, last, the metrics and the curves."""
        c = self.config
        start = time.perf_counter()
        row = {"epoch": self.epoch + 1, "lr": self.optimizer.param_groups[0]["lr"]}
        row.update(self.train_epoch(self.epoch))
        self.comm.where = f"evaluation after epoch {self.epoch + 1}"
        if not c.sync_bn:  # per-process statistics: every process evaluates (and rank 0 saves) rank 0's, as DDP
            distributed.broadcast_buffers(self.model, self.comm)
        row["test_loss"], row["test_acc"], _, _ = evaluate(self.model, self.test_loader, c.label_smoothing,
                                                           comm=self.comm)
        row["epoch_time_s"] = time.perf_counter() - start
        self.epoch += 1
        self.history.append(row)
        is_best = row["test_acc"] > self.best_acc
        self.best_acc = max(self.best_acc, row["test_acc"])
        if self.comm.rank != 0:  # rank 0 alone writes
            return
        # NOTE: best before last: a crash between the two then redoes this epoch on --resume and
        # rewrites best identically, where the other order could leave best one epoch stale.
        if is_best:  # weights and metadata only: a plain weights file for PyTorch and --init-from
            save_weights(self.best_path, self.model, epoch=self.epoch,
                         extra={"model": c.model, "classes": self.classes, "best_acc": self.best_acc,
                                "config": dataclasses.asdict(c)})
        self._save(self.last_path)
        write_history(c.out, self.history)
        plots.plot_curves(self.history, os.path.join(c.out, "curves.png"),
                          title=f"{c.model} on {self.device}, run {c.out}")
        self.log(f"epoch {row['epoch']}/{self.epochs_to_run}: train loss {row['train_loss']:.4f} acc {row['train_acc']:.4f} | "
                 f"test loss {row['test_loss']:.4f} acc {row['test_acc']:.4f} | "
                 f"{row['images_per_s']:.0f} img/s, {row['epoch_time_s']:.1f} s")

    def _save(self, path) -> None:
        config = dataclasses.asdict(self.config)
        save_checkpoint(path, self.model, self.optimizer, self.scheduler, epoch=self.epoch,
                        extra={"config": config, "classes": self.classes, "best_acc": self.best_acc,
                               "history": self.history, "scaler": self.scaler.state_dict(),
                               "world_size": self.comm.size}, arrays=self.recipe.state_dict())

    def final_report(self) -> dict:
        """Evaluate on the test split; write final_eval.json and confusion_matrix.png; print the table."""
        tta = self.config.tta or self.recipe.default_tta
        report = report_on(self.model, self.test_loader, self.classes, comm=self.comm, tta=tta)
        report["tta"] = tta
        report["accuracy_without_tta"] = (report["accuracy"] if tta == "none" else
                                          evaluate(self.model, self.test_loader, comm=self.comm)[1])
        report["train_time_s"] = sum(row["train_time_s"] for row in self.history)  # evaluation excluded
        report["best_acc"] = self.best_acc
        self.log(format_history(self.history))
        if tta != "none":
            self.log(f"test accuracy {report['accuracy']:.4f} with test-time augmentation ({tta}), "
                     f"{report['accuracy_without_tta']:.4f} without")
        self.log(f"training time {report['train_time_s'] / 60:.1f} min (evaluation excluded), "
                 f"{self.epoch} epochs, {self.total_steps} steps")
        if self.comm.rank == 0:
            write_report(report, self.config.out, self.log, title=f"{self.config.model}, epoch {self.epoch}")
            self.log(end_line(self.config.out))
        return report


RUN_FILES = run_dir.RUN_FILES
_remove_stale_temp_files = remove_stale_temp_files  # the names tests/train/test_crash_safety.py imports


def _quiet(*args, **kwargs) -> None:
    """The log of the processes other than rank 0."""


def _fingerprint(dataset) -> list:
    """What identifies a data set cheaply: its size, image shape and a CRC of its labels."""
    return [len(dataset), list(dataset.data.shape[1:]), zlib.crc32(dataset.targets.tobytes())]


def _no_steps(config, n_train: int) -> None:
    raise ValueError(f"{n_train} training image(s) do not fill one batch of {config.batch_size}, and "
                     f"{'--recipe ' + config.recipe if config.recipe else 'this run'} drops a partial last batch: "
                     f"lower --batch-size or use more images")


class _Progress:
    """A tqdm bar with loss/accuracy/images-per-second, or a few plain lines without tqdm."""

    def __init__(self, total, desc, enabled, log):
        self.bar, self.total, self.desc, self.log, self.n = None, total, desc, log, 0
        self.enabled = enabled
        if enabled:
            try:
                from tqdm import tqdm
                self.bar = tqdm(total=total, desc=desc, leave=False, file=sys.stderr, mininterval=0.5)
            except ImportError:
                pass

    def update(self, loss, acc, ips):
        self.n += 1
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{loss:.3f}", acc=f"{acc:.3f}", img_s=f"{ips:.0f}", refresh=False)
            self.bar.update(1)
        elif self.enabled and (self.n % max(1, self.total // 10) == 0 or self.n == self.total):
            self.log(f"{self.desc} step {self.n}/{self.total}: loss {loss:.4f} acc {acc:.4f} {ips:.0f} img/s")

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None
