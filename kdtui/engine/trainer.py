"""Train a student (optionally distilled from a frozen teacher) and emit events.

The trainer knows nothing about any UI: it calls each sink with typed events
(:mod:`kdtui.events`). After every epoch it first emits :class:`EpochEnd` (the
store appends the epoch to metrics.jsonl), then writes ``last.pt``/``best.pt``
atomically; a resume starts after the newest checkpoint and drops any metrics of later
epochs, so each epoch is recorded exactly once whatever moment a run was killed.

Usage::

    trainer = Trainer(cfg, data, teacher=teacher_net, teacher_id=None, sinks=[writer])
    ended = trainer.fit(run, resume=False)
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import time
import traceback
from pathlib import Path
from typing import Any

import torch
from torch import nn

from kdtui.config import RunConfig
from kdtui.data.base import DataBundle
from kdtui import events as ev
from kdtui.engine import distributed as ddp
from kdtui.engine.checkpoint import load_checkpoint, save_checkpoint
from kdtui.engine.mixing import mix_batch
from kdtui.engine.objective import Objective
from kdtui.engine.optim import build_optimizer, lr_at
from kdtui.engine.system import SystemSampler
from kdtui.environment import collect_environment
from kdtui.engine.teacher import FrozenTeacher
from kdtui.errors import CheckpointError, ConfigError, KdtuiError
from kdtui.losses import loss_label
from kdtui.losses.base import LossInputs
from kdtui.models import build_model, count_parameters
from kdtui.store import RunDir, method_label

CHECKPOINT_FORMAT = "kdtui-checkpoint-1"


class DivergenceError(KdtuiError):
    """A loss term became NaN or infinite."""


def to_floats(sums: dict[str, torch.Tensor], count: int) -> dict[str, float]:
    """Means of accumulated device scalars, fetched with one host sync."""
    if not sums:
        return {}
    values = (torch.stack(list(sums.values())) / max(count, 1)).tolist()
    return dict(zip(sums, values))


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"train.device: {name} was asked for, but this machine has no usable "
                              "CUDA GPU. Use --set train.device=auto (or cpu).")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"train.device: {name} does not exist; this machine has "
                              f"{torch.cuda.device_count()} GPU(s), cuda:0 … cuda:{torch.cuda.device_count() - 1}.")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("train.device: mps is not available here. Use --set train.device=auto.")
    return device


def configure_determinism(deterministic: bool, device: torch.device) -> None:
    """train.deterministic: deterministic kernels only (an op without one raises), cuDNN's
    autotuner off. Otherwise cuDNN benchmarks its kernels once per shape and keeps the fastest
    (CIFAR's fixed shapes make that pay), which makes GPU runs differ in the last digits."""
    if deterministic and device.type == "cuda":
        # cuBLAS needs a fixed workspace to be deterministic; read when CUDA starts.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(deterministic)
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = not deterministic and device.type == "cuda"


class Trainer:
    def __init__(self, cfg: RunConfig, data: DataBundle, *, teacher: nn.Module | None,
                 teacher_id: str | None, sinks: list[ev.Sink],
                 stop_event: threading.Event | None = None,
                 study: dict[str, Any] | None = None) -> None:
        self.cfg, self.data = cfg, data
        self.run: RunDir | None = None  # given to fit(): everything above is checked before it exists
        self.sinks = sinks
        self.stop_event = stop_event or threading.Event()
        # A StopRequest may also ask to stop once the current epoch is done (SIGUSR1).
        self.stop_at_epoch_end = (stop_event.at_epoch_end if isinstance(stop_event, ev.StopRequest)
                                  else threading.Event())
        # Under torchrun: this process's place, device and share of each global batch.
        self.world = ddp.current_world()
        self.device = (ddp.device_for(cfg.train.device, self.world) if self.world.active
                       else resolve_device(cfg.train.device))
        ddp.local_batch_size(cfg.train.batch_size, self.world)  # a clear error if it does not divide
        self.shard = self.world.shard  # Shard() (the whole batch) in one process
        self.use_amp = cfg.train.amp and self.device.type == "cuda"
        self.teacher_id = teacher_id
        self.study = study

        configure_determinism(cfg.train.deterministic, self.device)
        torch.manual_seed(cfg.train.seed)
        self.student = build_model(cfg.student.arch, data.num_classes).to(
            self.device, memory_format=torch.channels_last)
        if cfg.train.sync_bn:
            self.student = ddp.sync_batchnorm(self.student, self.device, self.world)
        self.teacher = (FrozenTeacher(teacher).to(self.device, memory_format=torch.channels_last)
                        if teacher is not None else None)
        self.objective = Objective(cfg.active_losses).to(self.device)
        # Skip the teacher's forward pass when no active loss uses it (e.g. CE only).
        self.teacher_needed = self.teacher is not None and any(
            method.needs_teacher for method in self.objective.methods.values())
        self.setup_objective()
        if cfg.train.compile:
            self.compile_modules()
        self.optimizer = build_optimizer(
            cfg.train, list(self.student.parameters()) + list(self.objective.parameters()))
        # DDP averages the student's gradients; those of learned loss modules (FitNet's
        # regressor, CRD's embeddings, AFD's attention) are averaged by the trainer.
        self.model = ddp.wrap_student(self.student, self.device, self.world)
        self.loss_parameters = [p for p in self.objective.parameters() if p.requires_grad]
        ddp.broadcast_state(self.objective, self.world)
        ddp.decorrelate_rng(cfg.train.seed, 0, self.world)
        self.stops = ddp.StopVote(self.world)
        self.steps_per_epoch = max(data.train_size // cfg.train.batch_size, 1)
        self.epoch = 0
        self.saved_epoch = 0  # the epoch last.pt holds: what a resume continues after
        self.best_test_acc = -1.0
        self.best_epoch = 0
        self.last_test_acc: float | None = None
        self.teacher_test_acc: float | None = None
        self.system = SystemSampler(cuda=self.device.type == "cuda")  # sampled where steps are logged

    def setup_objective(self) -> None:
        """Size learned loss modules with one dry forward of a zero batch: before the
        optimiser is built (so it trains them) and before a resume restores them. A zero
        batch leaves the data order and the RNG untouched."""
        images = torch.zeros(2, 3, self.data.image_size, self.data.image_size, device=self.device
                             ).contiguous(memory_format=torch.channels_last)
        self.student.eval()  # no BatchNorm running-statistics update
        with torch.no_grad():
            student_features = self.student(images).features
            teacher_features = self.teacher(images).features if self.teacher is not None else None
            self.objective.setup(student_features, teacher_features)
            # One dry loss evaluation: a student/teacher pair the methods cannot compare
            # (e.g. a different number of stages for AMD) fails here, not at step one.
            if self.teacher_needed or self.teacher is None:
                outputs = self.student(images)
                teacher_out = self.teacher(images) if self.teacher_needed else None
                dry = LossInputs.from_outputs(outputs, teacher_out,
                                              torch.zeros(2, dtype=torch.long, device=self.device))
                self.objective.setup_data(dry, self.data.train_labels)
                self.objective(dry)
        self.student.train()

    def compile_modules(self) -> None:
        """train.compile: compile the forward of the student, the teacher and each loss method
        in place (``nn.Module.compile``: state_dict keys, checkpoints and the optimiser see the
        same modules). Compilation happens at the first step; the dry run above stays eager."""
        self.student.compile()
        if self.teacher is not None:
            self.teacher.compile()
        for method in self.objective.methods.values():
            method.compile()

    # -- events -----------------------------------------------------------------------
    def emit(self, event: ev.Event) -> None:
        for sink in self.sinks:
            sink(event)

    def log(self, text: str, level: str = "info") -> None:
        self.emit(ev.LogMessage(text=text, level=level))

    # -- checkpoints --------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "epoch": self.epoch,
            "arch": self.cfg.student.arch,
            "num_classes": self.data.num_classes,
            "model": self.student.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "objective": self.objective.state_dict(),
            "best_test_acc": self.best_test_acc,
            "best_epoch": self.best_epoch,
            "last_test_acc": self.last_test_acc,
            "teacher_test_acc": self.teacher_test_acc,  # a resume need not evaluate it again
            "rng_cpu": torch.get_rng_state(),
            "rng_cuda": self.cuda_rng_states(),
        }

    def cuda_rng_states(self) -> list[torch.Tensor]:
        if not torch.cuda.is_available():
            return []
        if self.world.active:  # this rank's GPU only: reading all would start CUDA on every GPU
            return [torch.cuda.get_rng_state(self.device)] if self.device.type == "cuda" else []
        return torch.cuda.get_rng_state_all()

    def restore(self, path: Path) -> None:
        state = load_checkpoint(path)
        if state.get("format") != CHECKPOINT_FORMAT or (state.get("arch"), state.get("num_classes")) != (
                self.cfg.student.arch, self.data.num_classes):
            raise CheckpointError(
                f"Checkpoint {path} does not belong to this run's config (it holds "
                f"{state.get('arch')} for {state.get('num_classes')} classes, format "
                f"{state.get('format')}; config.yaml asks for {self.cfg.student.arch} with "
                f"{self.data.num_classes} classes). Was config.yaml edited? Restore it, or start a new run.")
        try:
            self.student.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.objective.load_state_dict(state["objective"])
        except (KeyError, RuntimeError, ValueError) as exc:
            raise CheckpointError(f"Checkpoint {path} does not fit this run's model, optimiser or "
                                  f"loss modules ({str(exc).splitlines()[0]}).") from None
        self.epoch = self.saved_epoch = int(state["epoch"])
        self.best_test_acc = float(state["best_test_acc"])
        self.best_epoch = int(state["best_epoch"])
        self.last_test_acc = state.get("last_test_acc")
        self.teacher_test_acc = state.get("teacher_test_acc")
        torch.set_rng_state(state["rng_cpu"])
        if state.get("rng_cuda") and torch.cuda.is_available():
            if self.world.active:  # never touch the GPUs of other ranks
                if self.device.type == "cuda":
                    torch.cuda.set_rng_state(state["rng_cuda"][0], self.device)
            else:
                torch.cuda.set_rng_state_all(state["rng_cuda"])
        ddp.decorrelate_rng(self.cfg.train.seed, self.epoch, self.world)

    # -- evaluation ---------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, forward: Any) -> float:
        """Test accuracy in %, computed in float32 (never under bf16 autocast), so a reported
        number does not depend on whether the run trained with mixed precision."""
        counts = torch.zeros(2, dtype=torch.long, device=self.device)  # correct, total
        for images, labels in self.data.test_batches(self.cfg.train.eval_batch_size, self.device,
                                                     shard=self.shard):
            with torch.autocast(self.device.type, enabled=False):
                logits = forward(images).logits.float()
            counts[0] += (logits.argmax(1) == labels).sum()
            counts[1] += len(labels)
        # Under torchrun each rank saw its share of the test set: sum the counts.
        correct, total = ddp.sum_over_ranks(counts, self.world).tolist()
        return 100.0 * correct / max(total, 1)

    def evaluate_student(self) -> float:
        # Each rank updated BatchNorm's running statistics (the student's, and a loss module's
        # such as FitNet's regressor) with its own share: evaluate and save rank 0's everywhere.
        ddp.broadcast_norm_statistics(self.student, self.world)
        ddp.broadcast_norm_statistics(self.objective, self.world)
        self.student.eval()
        try:
            return self.evaluate(self.student)
        finally:
            self.student.train()

    # -- training -----------------------------------------------------------------------
    def fit(self, run: RunDir, resume: bool = False) -> ev.RunEnded:
        self.run = run
        started = time.time()
        if resume:
            last = self.run.checkpoints / "last.pt"
            if last.exists():
                self.restore(last)
            if self.world.is_main:
                self.run.truncate_metrics(self.epoch)
        config = self.cfg.to_dict()
        try:
            self.emit(ev.RunStarted(
                run_id=self.run.id, run_dir=str(self.run.path), config=config,
                device=str(self.device), epochs=self.cfg.train.epochs, start_epoch=self.epoch,
                steps_per_epoch=self.steps_per_epoch,
                student_params=count_parameters(self.student),
                teacher_params=count_parameters(self.teacher) if self.teacher else None,
                teacher_id=self.teacher_id,
                method=method_label(config.get("loss"), loss_label),
                environment=collect_environment(),
                study=self.study,
                term_weights=self.objective.coefficients(self.epoch + 1),
                world_size=self.world.size,
            ))
            # One-time data work (decoding an image folder into the cache), its progress at
            # level "data", which the console prints and the app's log panel shows; under
            # torchrun rank 0 decodes and the others then load its cache.
            if not ddp.main_first(self.world, lambda: self.data.prepare(
                    lambda text: self.log(text, level="data"), self.stop_event)):
                return self.end(ev.RunStopped, started)
            if self.teacher is not None and self.teacher_test_acc is None:
                self.teacher_test_acc = self.evaluate(self.teacher)
                self.emit(ev.TeacherEvaluated(test_acc=self.teacher_test_acc))
            while self.epoch < self.cfg.train.epochs:
                if not self.train_epoch(self.epoch + 1):
                    return self.end(ev.RunStopped, started)
                if self.stop_at_epoch_end.is_set() and self.epoch < self.cfg.train.epochs:
                    self.log(f"stopped at the end of epoch {self.epoch}, as asked; the run resumes "
                             f"after it")
                    return self.end(ev.RunStopped, started)
            return self.end(ev.RunFinished, started)
        except KeyboardInterrupt:
            self.end(ev.RunStopped, started)
            raise
        except KdtuiError as exc:
            self.end(ev.RunFailed, started, error=str(exc))
            raise
        except OSError as exc:  # disk full, folder removed or made read-only mid-run
            if exc.errno is None:  # e.g. PIL's UnidentifiedImageError: not a write problem
                self.log(traceback.format_exc(), level="error")
                self.end(ev.RunFailed, started, error=f"{type(exc).__name__}: {exc}")
                raise
            message = (f"Could not write to the run folder {self.run.path}: "
                       f"{exc.strerror or exc}. Free space (or fix permissions), then continue "
                       f"with `kdtui run --resume {self.run.id}`; the last complete checkpoint is kept.")
            with contextlib.suppress(OSError):
                self.end(ev.RunFailed, started, error=message)
            raise KdtuiError(message) from None
        except Exception as exc:
            if self.world.active and ddp.is_communication_failure(exc):
                message = (f"Process {self.world.rank} of {self.world.size} lost the others "
                           f"({str(exc).splitlines()[0].split('. ')[0]}): another process failed or was killed, and "
                           "its own output says why. The last complete checkpoint is kept; continue "
                           f"with `kdtui run --resume {self.run.id}` (with any number of processes).")
                with contextlib.suppress(OSError):
                    self.end(ev.RunFailed, started, error=message)
                raise KdtuiError(message) from None
            with contextlib.suppress(OSError):
                self.log(traceback.format_exc(), level="error")
            self.end(ev.RunFailed, started, error=f"{type(exc).__name__}: {exc}")
            raise

    def end(self, kind: type[ev.RunEnded], started: float, **extra: Any) -> ev.RunEnded:
        event = kind(epochs_done=self.saved_epoch,
                     best_test_acc=self.best_test_acc if self.best_epoch else None,
                     final_test_acc=self.last_test_acc, wall_time_s=time.time() - started, **extra)
        self.emit(event)
        return event

    def train_epoch(self, epoch: int) -> bool:
        """One epoch; False if a stop was requested (the epoch is abandoned, not saved)."""
        cfg = self.cfg.train
        lr = lr_at(cfg, epoch)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.student.train()
        sums: dict[str, torch.Tensor] = {}
        window: dict[str, torch.Tensor] = {}
        correct = torch.zeros((), dtype=torch.long, device=self.device)
        seen = 0
        window_steps = 0
        skipped = 0
        first_bad: torch.Tensor | None = None
        epoch_start = time.time()
        step = 0
        with_indices = self.objective.needs_indices
        for step, batch in enumerate(self.data.train_batches(
                cfg.batch_size, epoch, self.device, with_indices=with_indices, shard=self.shard), start=1):
            images, labels = batch[0], batch[1]
            indices = batch[2] if with_indices else None
            if self.stops.poll(self.stop_event.is_set(), self.stop_at_epoch_end.is_set()):
                self.stops.settle()
                self.log(f"stop requested during epoch {epoch}; the run resumes after epoch {epoch - 1}")
                return False
            mixed = mix_batch(images, labels, mixup_alpha=self.cfg.data.mixup_alpha,
                              cutmix_alpha=self.cfg.data.cutmix_alpha, seed=cfg.seed,
                              step=(epoch - 1) * self.steps_per_epoch + step)
            mixed_labels, mix_weight = None, 1.0
            if mixed is not None:
                images, mixed_labels, mix_weight = mixed
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.use_amp):
                student_out = self.model(images)
                teacher_out = self.teacher(images) if self.teacher_needed else None
                total, terms = self.objective(LossInputs.from_outputs(
                    student_out, teacher_out, labels, epoch=epoch, mixed_labels=mixed_labels,
                    mix_weight=mix_weight, indices=indices))
            if cfg.nan_policy == "skip" and not ddp.all_ranks_agree(torch.isfinite(total), self.world):
                # One host sync per step, paid only by runs that ask to skip bad steps.
                skipped += 1
                bad = next((k for k, v in terms.items() if not torch.isfinite(v)), "total")
                self.log(f"skipped step {step} of epoch {epoch}: loss term {bad} is not finite "
                         f"({skipped}/{cfg.nan_skip_limit} this epoch)", level="warning")
                if skipped >= cfg.nan_skip_limit:
                    raise DivergenceError(
                        f"Loss term {bad} was NaN/Inf in {skipped} steps of epoch {epoch} (last at "
                        f"step {step}), reaching train.nan_skip_limit; the last good checkpoint "
                        "is kept. Lower train.lr or the loss weights.")
                continue
            self.optimizer.zero_grad(set_to_none=True)
            total.backward()
            ddp.average_gradients(self.loss_parameters, self.world)
            self.optimizer.step()

            terms = {**{k: v.detach().float() for k, v in terms.items()}, "total": total.detach()}
            if first_bad is None:
                first_bad = torch.full((len(terms),), -1, dtype=torch.long, device=self.device)
            # Remember, per term, the first step it was not finite — on the device, no sync.
            newly_bad = ~torch.isfinite(torch.stack(list(terms.values()))) & (first_bad < 0)
            first_bad = torch.where(newly_bad, torch.full_like(first_bad, step), first_bad)
            for name, value in terms.items():
                sums[name] = sums.get(name, 0) + value
                window[name] = window.get(name, 0) + value
            window_steps += 1
            correct += (student_out.logits.detach().argmax(1) == labels).sum()
            seen += len(labels)
            if step % cfg.log_every == 0 and window_steps:
                means = self.check_finite(to_floats(ddp.mean_over_ranks(window, self.world), window_steps),
                                          epoch, first_bad)
                self.emit(ev.StepMetrics(
                    epoch=epoch, step=step, steps_per_epoch=self.steps_per_epoch,
                    global_step=(epoch - 1) * self.steps_per_epoch + step, lr=lr, loss=means,
                    img_per_s=seen * self.world.size / max(time.time() - epoch_start, 1e-9),
                    system=self.system.sample()))
                window, window_steps = {}, 0
        if self.stops.at_epoch_end(self.stop_event.is_set(), self.stop_at_epoch_end.is_set()):
            self.stop_at_epoch_end.set()  # a rank was asked to stop: all stop once this epoch is saved
        train_time = time.time() - epoch_start
        done = max(step - skipped, 1)
        loss = self.check_finite(to_floats(ddp.mean_over_ranks(sums, self.world), done), epoch, first_bad)
        correct, seen = ddp.sum_over_ranks(torch.stack([correct, torch.tensor(seen, device=self.device)]),
                                           self.world).tolist()
        self.check_weights(epoch)
        test_acc = self.evaluate_student()
        self.epoch, self.last_test_acc = epoch, test_acc
        is_best = test_acc > self.best_test_acc
        if is_best:
            self.best_test_acc, self.best_epoch = test_acc, epoch
        self.emit(ev.EpochEnd(
            epoch=epoch, epochs=cfg.epochs, lr=lr, loss=loss,
            train_acc=100.0 * correct / max(seen, 1), test_acc=test_acc,
            best_test_acc=self.best_test_acc, best_epoch=self.best_epoch,
            img_per_s=seen / max(train_time, 1e-9), time_s=time.time() - epoch_start,
            term_weights=self.objective.coefficients(epoch), system=self.system.sample(),
        ))
        if self.world.is_main:  # every rank holds the same weights; one writes them
            state = self.state()
            # best.pt first: a kill between the two writes then leaves last.pt at the previous
            # epoch, and the resumed run redoes (and re-saves) this one.
            if is_best:
                save_checkpoint(self.run.checkpoints / "best.pt", state)
            save_checkpoint(self.run.checkpoints / "last.pt", state)
        self.saved_epoch = epoch
        return True

    def kept_checkpoint(self) -> str:
        return (f"the checkpoint of epoch {self.epoch} is kept" if self.epoch
                else "no checkpoint had been written yet")

    def check_weights(self, epoch: int) -> None:
        tensors = {**self.student.state_dict(), **{f"loss.{k}": v for k, v in self.objective.state_dict().items()}}
        floats = {k: v for k, v in tensors.items() if v.is_floating_point()}
        finite = torch.stack([torch.isfinite(v).all() for v in floats.values()])
        if not finite.all():  # one host sync per epoch
            name = list(floats)[int((~finite).nonzero()[0])]
            raise DivergenceError(
                f"Weight {name} holds NaN/Inf after epoch {epoch}; the run was stopped and "
                f"{self.kept_checkpoint()}. Lower train.lr or the loss weights.")

    def check_finite(self, values: dict[str, float], epoch: int,
                     first_bad: torch.Tensor | None) -> dict[str, float]:
        if all(math.isfinite(v) for v in values.values()) or first_bad is None:
            return values
        steps = first_bad.tolist()
        names = list(values)
        bad = [(step, name) for step, name in zip(steps, names) if step >= 0]
        step, name = min(bad) if bad else (-1, next(n for n, v in values.items() if not math.isfinite(v)))
        raise DivergenceError(
            f"Loss term {name} became {values[name]} at epoch {epoch}, step {step}; the run was "
            f"stopped and {self.kept_checkpoint()}. Lower train.lr or the loss weights, or set "
            "train.nan_policy: skip.")
