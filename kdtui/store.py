"""The run store: one folder per run under the runs root.

Layout of ``<root>/<YYYYmmdd-HHMMSS>-<name>/`` (the folder name is the run id)::

    config.yaml          complete resolved config (re-running it reproduces the run)
    metrics.jsonl        one JSON object per line, flushed per line ("event": "epoch", ...)
    summary.json         status, epochs, accuracies; replaced atomically
    checkpoints/last.pt  checkpoints/best.pt (atomic)
    log.txt

Readers (the runs list, ``watch``, the app) see folders while they are written, so every
reader here tolerates missing files and a torn last line.

Usage::

    run = create_run(runs_root(), "quickstart")
    writer = RunStoreWriter(run)          # an event sink
"""

from __future__ import annotations

import json
import os
import re
import socket
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import yaml

from kdtui.errors import KdtuiError

try:  # libyaml when present: ~10× faster, which matters for listing 1000 runs
    from yaml import CSafeLoader as _SafeLoader
except ImportError:  # pragma: no cover - depends on how PyYAML was built
    from yaml import SafeLoader as _SafeLoader  # type: ignore[assignment]

RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,79}")
RUN_ID = re.compile(r"\d{8}-\d{6}-[A-Za-z0-9][A-Za-z0-9._+-]*")


def runs_root(cli_value: str | os.PathLike[str] | None = None) -> Path:
    """--runs-dir, else $KDTUI_RUNS_DIR, else ./runs."""
    chosen = cli_value or os.environ.get("KDTUI_RUNS_DIR") or "runs"
    return Path(chosen).expanduser().absolute()


def process_start_ticks(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks since boot, Linux /proc), or None if unknown.

    Recorded next to the pid so that a pid reused by another process (after a reboot or a
    container restart keeps the hostname) is not mistaken for the run's writer."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat.rsplit(")", 1)[1].split()[19])  # field 22; the name may hold spaces
    except (OSError, ValueError, IndexError):
        return None


def process_alive(pid: object, host: object, started: object = None) -> bool:
    """Whether the process that wrote a 'running' summary still exists on this machine."""
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 1 or host != socket.gethostname():
        return False  # pid 0/1/-1 would mean "my group", init or "everyone" to os.kill
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError, ValueError):
        return False
    except PermissionError:
        pass
    if isinstance(started, int) and process_start_ticks(pid) not in (None, started):
        return False  # the pid now belongs to another process
    return pid != os.getpid()


def writer_alive(summary: dict[str, Any] | None) -> bool:
    """Whether a run's summary says "running" and the process that wrote it still runs here."""
    summary = summary or {}
    return summary.get("status") == "running" and process_alive(
        summary.get("pid"), summary.get("host"), summary.get("pid_start"))


@contextmanager
def training_lock(run: "RunDir") -> Iterator[None]:
    """Held while a process trains ``run``, so two processes never train one run folder
    (two resumes started at once, from the app and a shell). Released when the process
    ends, however it ends."""
    import fcntl

    handle = (run.path / ".lock").open("a")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise KdtuiError(f"Run {run.id} is being trained by another process right now; "
                             "wait for it, or stop it first, then resume.") from None
        yield
    finally:
        handle.close()


def check_run_name(name: str) -> str:
    if not RUN_NAME.fullmatch(name) or ".." in name:
        raise KdtuiError(
            f"Run name {name!r} is not allowed: use letters, digits, '.', '_', '+' and '-' "
            "(up to 80 characters, starting with a letter or digit, no '..'), e.g. --name wrn16_amd."
        )
    return name


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over ``path``."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Records of a JSON-lines file; a torn or corrupt line (a kill mid-write) is skipped."""
    records = []
    try:
        with path.open("r", encoding="utf-8") as handle:
            for line in handle:
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(record, dict):
                    records.append(record)
    except FileNotFoundError:
        pass
    return records


@dataclass
class RunDir:
    path: Path

    @property
    def id(self) -> str:
        return self.path.name

    @property
    def config_path(self) -> Path:
        return self.path / "config.yaml"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def summary_path(self) -> Path:
        return self.path / "summary.json"

    @property
    def log_path(self) -> Path:
        return self.path / "log.txt"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    def read_config(self) -> dict[str, Any] | None:
        try:
            data = yaml.load(self.config_path.read_text(encoding="utf-8"), Loader=_SafeLoader)
        except (OSError, yaml.YAMLError, UnicodeDecodeError):
            return None
        return data if isinstance(data, dict) else None

    def read_summary(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.summary_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError, UnicodeDecodeError):
            return None
        return data if isinstance(data, dict) else None

    def read_metrics(self) -> list[dict[str, Any]]:
        return read_jsonl(self.metrics_path)

    def epochs(self) -> list[dict[str, Any]]:
        """The epoch records, torn or corrupt lines skipped. Step records are most of a long
        run's file and the writer starts each with '{"event": "step"', so those lines are
        skipped without being parsed."""
        records = []
        try:
            with self.metrics_path.open("r", encoding="utf-8", errors="replace") as handle:
                for line in handle:
                    if line.startswith('{"event": "step"'):
                        continue
                    try:
                        record = json.loads(line)
                    except json.JSONDecodeError:
                        continue
                    if isinstance(record, dict) and record.get("event") == "epoch":
                        records.append(record)
        except OSError:
            pass
        return records

    def write_config(self, config: dict[str, Any]) -> None:
        atomic_write_text(self.config_path, yaml.safe_dump(config, sort_keys=False, allow_unicode=True))

    def write_summary(self, summary: dict[str, Any]) -> None:
        atomic_write_text(self.summary_path, json.dumps(summary, indent=2) + "\n")

    def truncate_metrics(self, last_epoch: int) -> None:
        """Keep only records of epochs ≤ ``last_epoch`` (and run-level ones before them),
        dropping torn lines: what a resume from the epoch-``last_epoch`` checkpoint needs
        so that each epoch appears exactly once."""
        kept = [r for r in self.read_metrics()
                if r.get("event") in ("epoch", "step") and isinstance(r.get("epoch"), int)
                and r["epoch"] <= last_epoch]
        atomic_write_text(self.metrics_path, "".join(json.dumps(r) + "\n" for r in kept))


def method_label(loss: Any, label_of: Any = None) -> str:
    """'ce+kd+amd(g+l)' from a config's loss section: the active terms, in order.

    ``label_of(name, options)`` names a term (the loss registry's labels, which say e.g.
    whether AMD is global or g+l); without it, the bare loss names."""
    if not isinstance(loss, dict):
        return "?"
    parts = []
    for name, opts in loss.items():
        weight = opts.get("weight", 1.0) if isinstance(opts, dict) else opts
        if isinstance(weight, (int, float)) and weight <= 0:
            continue
        parts.append(str(label_of(name, opts) if label_of else name))
    return "+".join(parts) or "-"


def describe_config(config: dict[str, Any], label_of: Any = None) -> dict[str, Any]:
    """What a runs table shows of a config: dataset, student, teacher ("-" if none), method,
    epochs. Also written into summary.json, so listing runs needs no YAML parsing."""

    def section(name: str) -> dict[str, Any]:
        value = config.get(name)  # a hand-edited config may hold anything here
        return value if isinstance(value, dict) else {}

    teacher = config.get("teacher")
    return {"dataset": str(section("data").get("dataset", "?")),
            "student": str(section("student").get("arch", "?")),
            "teacher": str(teacher.get("arch") or "?") if isinstance(teacher, dict) else "-",
            "method": method_label(config.get("loss"), label_of),
            "epochs": section("train").get("epochs")}


def create_run(root: Path, name: str) -> RunDir:
    """A new, empty run folder ``<timestamp>-<name>``; never reuses an existing one."""
    check_run_name(name)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise KdtuiError(f"Cannot create the runs folder {root}: {exc.strerror}. Choose another "
                         "with --runs-dir or KDTUI_RUNS_DIR.") from None
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for attempt in range(1, 1000):
        suffix = "" if attempt == 1 else f"-{attempt}"
        path = root / f"{stamp}-{name}{suffix}"
        try:
            path.mkdir()  # exclusive: two runs started in the same second get distinct folders
        except FileExistsError:
            continue
        except OSError as exc:
            raise KdtuiError(f"Cannot create a run folder in {root}: {exc.strerror}. Choose "
                             "another runs folder with --runs-dir or KDTUI_RUNS_DIR.") from None
        (path / "checkpoints").mkdir()
        return RunDir(path)
    raise KdtuiError(f"Could not find a free run folder name for {name!r} in {root}.")


def iter_runs(root: Path) -> Iterator[RunDir]:
    if not root.is_dir():
        return
    for path in sorted(root.iterdir(), reverse=True):
        if path.is_dir() and RUN_ID.fullmatch(path.name):
            yield RunDir(path)


def resolve_run(root: Path, ref: str) -> RunDir:
    """A run by id (a folder of the runs root) or by the path of its folder."""
    candidate = Path(ref).expanduser()
    if candidate.is_dir() and (candidate / "config.yaml").exists():
        return RunDir(candidate.absolute())
    if RUN_ID.fullmatch(ref) and ".." not in ref and (root / ref).is_dir():
        return RunDir(root / ref)
    # A bare name picks the run of that name (e.g. "quickstart" or "quickstart-2").
    matches = [run for run in iter_runs(root) if run.id.split("-", 2)[2] == ref] if RUN_NAME.fullmatch(ref) else []
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise KdtuiError(f"{ref!r} matches several runs in {root}: "
                         f"{', '.join(r.id for r in matches[:5])}. Give the full run id.")
    raise KdtuiError(f"No run {ref!r} in {root}. `kdtui runs ls` lists the runs there; "
                     "use --runs-dir to look in another runs folder.")


def loss_label(name: str, options: Any) -> str:
    """A loss term's label from the registry (the writer runs where the losses are loaded)."""
    from kdtui.losses import LOSSES

    return LOSSES.get(name).label(name, options) if name in LOSSES else name


class RunStoreWriter:
    """Event sink that records a run: metrics.jsonl lines, summary.json, log.txt."""

    def __init__(self, run: RunDir) -> None:
        self.run = run
        self.summary: dict[str, Any] = run.read_summary() or {}
        self._process_start_wall = 0.0   # training time before this process (a resume)
        self._process_start = time.time()

    def __call__(self, event: Any) -> None:
        from kdtui.engine import events as ev

        if isinstance(event, ev.RunStarted):
            self.summary.update(
                status="running", run_id=event.run_id, epochs=event.epochs,
                epochs_done=event.start_epoch, device=event.device,
                student_params=event.student_params, teacher_params=event.teacher_params,
                teacher_id=event.teacher_id, started_at=self.summary.get("started_at", event.time),
                pid=os.getpid(), host=socket.gethostname(), pid_start=process_start_ticks(os.getpid()),
                describe=describe_config(event.config, loss_label),
            )
            self.summary.pop("error", None)
            for key in ("best_test_acc", "final_test_acc", "teacher_test_acc"):
                self.summary.setdefault(key, None)
            self.summary.setdefault("wall_time_s", 0.0)
            self._process_start_wall = self.summary["wall_time_s"]
            self._process_start = event.time
            # Readers (the dashboard) tell the elapsed time of a live run from these two.
            self.summary.update(process_started_at=event.time, wall_time_base_s=self._process_start_wall)
            self._write_summary()
            self._log(f"run {event.run_id} started on {event.device}"
                      + (f", resuming after epoch {event.start_epoch}" if event.start_epoch else ""))
        elif isinstance(event, ev.TeacherEvaluated):
            self.summary["teacher_test_acc"] = event.test_acc
            self._write_summary()
            self._log(f"teacher test accuracy {event.test_acc:.2f}%")
        elif isinstance(event, ev.StepMetrics):
            self._append(event.to_record())
        elif isinstance(event, ev.EpochEnd):
            self._append(event.to_record())
            self.summary.update(epochs_done=event.epoch, best_test_acc=event.best_test_acc,
                                best_epoch=event.best_epoch, final_test_acc=event.test_acc,
                                wall_time_s=self._wall(event.time))
            self._write_summary()
            loss = " ".join(f"{k}={v:.4g}" for k, v in event.loss.items())
            self._log(f"epoch {event.epoch}/{event.epochs} lr={event.lr:.4g} {loss} "
                      f"train_acc={event.train_acc:.2f} test_acc={event.test_acc:.2f} "
                      f"img/s={event.img_per_s:.0f}")
        elif isinstance(event, ev.LogMessage):
            self._log(event.text, event.level)
        elif isinstance(event, ev.RunEnded):
            self.summary.update(status=event.status, epochs_done=event.epochs_done,
                                best_test_acc=event.best_test_acc,
                                final_test_acc=event.final_test_acc,
                                wall_time_s=self._wall(event.time), ended_at=event.time)
            if isinstance(event, ev.RunFailed):
                self.summary["error"] = event.error
            self._write_summary()
            self._log(f"run {event.status}" + (f": {event.error}" if isinstance(event, ev.RunFailed) else ""))

    def _wall(self, now: float) -> float:
        return round(self._process_start_wall + now - self._process_start, 3)

    def _append(self, record: dict[str, Any]) -> None:
        with self.run.metrics_path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
            handle.flush()

    def _write_summary(self) -> None:
        self.run.write_summary(self.summary)

    def _log(self, text: str, level: str = "info") -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        with self.run.log_path.open("a", encoding="utf-8") as handle:
            handle.write(f"{stamp} {level.upper():5} {text}\n")
