"""Run folders: where they live, their names, and reading/writing their files safely.

Layout of ``<root>/<YYYYmmdd-HHMMSS>-<name>/`` (the folder name is the run id)::

    config.yaml          complete resolved config (re-running it reproduces the run)
    metrics.jsonl        one JSON object per line, flushed per line ("event": "epoch", ...)
    summary.json         status, epochs, accuracies; replaced atomically
    labels.json          the user's tags, note and display name (kdtui.store.labels); atomic
    checkpoints/last.pt  checkpoints/best.pt (atomic)
    log.txt

Readers (the runs list, ``watch``, the app) see folders while they are written, so every
reader here tolerates missing files and a torn last line.

Usage::

    run = create_run(runs_root(), "quickstart")
    run = resolve_run(runs_root(), "quickstart")     # by id, name or folder
    run.summary(), run.epochs()                      # typed records (kdtui.store.records)
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import yaml

from kdtui.errors import KdtuiError
from kdtui.store.records import (EpochRecord, MetricsRecord, RunLabels, Summary, is_step_line,
                                 parse_line, parse_record, record_line)

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

    @property
    def eval_dir(self) -> Path:
        """``eval/``: what ``kdtui eval`` computed from the run (numbers, t-SNE, maps), a cache."""
        return self.path / "eval"

    def read_config(self) -> dict[str, Any] | None:
        try:
            data = yaml.load(self.config_path.read_text(encoding="utf-8"), Loader=_SafeLoader)
        except (OSError, yaml.YAMLError, UnicodeDecodeError):
            return None
        return data if isinstance(data, dict) else None

    def read_summary(self) -> dict[str, Any] | None:
        """summary.json as written (a raw mapping; :meth:`summary` is the typed view)."""
        try:
            data = json.loads(self.summary_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError, UnicodeDecodeError):
            return None
        return data if isinstance(data, dict) else None

    def summary(self) -> Summary | None:
        """The typed summary; None when summary.json is missing or unreadable."""
        data = self.read_summary()
        return Summary.from_dict(data) if data is not None else None

    def read_metrics(self) -> list[dict[str, Any]]:
        """Every parseable line of metrics.jsonl, raw (:meth:`records` is the typed view)."""
        return read_jsonl(self.metrics_path)

    def records(self) -> list[MetricsRecord]:
        """Step and epoch records in file order; torn or foreign lines skipped."""
        return [r for r in map(parse_record, self.read_metrics()) if r is not None]

    def epochs(self) -> list[EpochRecord]:
        """The epoch records, torn or corrupt lines skipped. Step records are most of a long
        run's file; they are recognised by their first characters and never parsed."""
        records = []
        try:
            with self.metrics_path.open("r", encoding="utf-8", errors="replace") as handle:
                for line in handle:
                    if is_step_line(line):
                        continue
                    record = parse_line(line)
                    if isinstance(record, EpochRecord):
                        records.append(record)
        except OSError:
            pass
        return records

    @property
    def labels_path(self) -> Path:
        return self.path / "labels.json"

    def labels(self) -> RunLabels:
        """The user's tags, note and display name; empty ones when labels.json is missing or
        unreadable (labels are never worth failing a listing for)."""
        try:
            data = json.loads(self.labels_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError, UnicodeDecodeError):
            return RunLabels()
        return RunLabels.from_dict(data)

    def write_labels(self, labels: RunLabels) -> None:
        atomic_write_text(self.labels_path, json.dumps(labels.to_dict(), indent=2, ensure_ascii=False) + "\n")

    @property
    def environment_path(self) -> Path:
        return self.path / "env.json"

    def environment(self) -> dict[str, Any] | None:
        """env.json: ``{"started": {...}, "resumed": [{...}, ...]}`` — what the run ran on
        (:mod:`kdtui.environment`); None for runs recorded before it existed."""
        try:
            data = json.loads(self.environment_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError, UnicodeDecodeError):
            return None
        return data if isinstance(data, dict) else None

    def record_environment(self, environment: dict[str, Any]) -> None:
        """The first start's environment, then one entry per resume (which may run elsewhere)."""
        record = self.environment() or {}
        if "started" not in record:
            record = {"started": environment, "resumed": []}
        else:
            resumed = record.get("resumed")
            record["resumed"] = [*(resumed if isinstance(resumed, list) else []), environment]
        atomic_write_text(self.environment_path, json.dumps(record, indent=2) + "\n")

    def write_config(self, config: dict[str, Any]) -> None:
        atomic_write_text(self.config_path, yaml.safe_dump(config, sort_keys=False, allow_unicode=True))

    def write_summary(self, summary: Summary | dict[str, Any]) -> None:
        """Replace summary.json atomically (a plain mapping is written as given: tests and
        tools that fabricate runs use it)."""
        data = summary.to_dict() if isinstance(summary, Summary) else summary
        atomic_write_text(self.summary_path, json.dumps(data, indent=2) + "\n")

    def append_record(self, record: MetricsRecord) -> None:
        with self.metrics_path.open("a", encoding="utf-8") as handle:
            handle.write(record_line(record))
            handle.flush()

    def truncate_metrics(self, last_epoch: int) -> None:
        """Keep only records of epochs ≤ ``last_epoch``, dropping torn lines: what a resume
        from the epoch-``last_epoch`` checkpoint needs so that each epoch appears exactly once."""
        kept = [r for r in self.records() if r.epoch <= last_epoch]
        atomic_write_text(self.metrics_path, "".join(record_line(r) for r in kept))


def create_run(root: Path, name: str, *, config: dict[str, Any] | None = None,
               summary: Summary | None = None) -> RunDir:
    """A new run folder ``<timestamp>-<name>``; never reuses an existing one.

    The folder appears whole: it is made under a hidden name with its ``checkpoints/`` and the
    given ``config.yaml`` and ``summary.json``, then renamed into place. So a process killed
    at any moment never leaves a run folder without the record it was created with (a
    study's point, say), and renaming a non-empty folder cannot replace another one."""
    check_run_name(name)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise KdtuiError(f"Cannot create the runs folder {root}: {exc.strerror}. Choose another "
                         "with --runs-dir or KDTUI_RUNS_DIR.") from None
    try:
        # A dot-name: never listed as a run (nor left behind, unless the process is killed
        # in these milliseconds). mkdir, not mkdtemp: the usual permissions, not 0700.
        staged = root / f".creating-{name}.{os.getpid()}.{uuid.uuid4().hex[:12]}"
        staged.mkdir()
        (staged / "checkpoints").mkdir()
    except OSError as exc:
        raise KdtuiError(f"Cannot create a run folder in {root}: {exc.strerror}. Choose another "
                         "runs folder with --runs-dir or KDTUI_RUNS_DIR.") from None
    if config is not None:
        RunDir(staged).write_config(config)
    if summary is not None:
        RunDir(staged).write_summary(summary)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for attempt in range(1, 1000):
        suffix = "" if attempt == 1 else f"-{attempt}"
        path = root / f"{stamp}-{name}{suffix}"
        if path.exists():
            continue
        try:
            os.rename(staged, path)  # fails on an existing non-empty folder: two runs started
        except OSError as exc:       # in the same second get distinct folders
            if exc.errno in (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR):
                continue
            shutil.rmtree(staged, ignore_errors=True)
            raise KdtuiError(f"Cannot create a run folder in {root}: {exc.strerror}. Choose "
                             "another runs folder with --runs-dir or KDTUI_RUNS_DIR.") from None
        return RunDir(path)
    shutil.rmtree(staged, ignore_errors=True)
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
    # A bare name picks the run of that name, or of that display name (kdtui.store.labels).
    matches = ([run for run in iter_runs(root) if run.id.split("-", 2)[2] == ref or run.labels().name == ref]
               if RUN_NAME.fullmatch(ref) else [])
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise KdtuiError(f"{ref!r} matches several runs in {root}: "
                         f"{', '.join(r.id for r in matches[:5])}. Give the full run id.")
    raise KdtuiError(f"No run {ref!r} in {root}. `kdtui runs ls` lists the runs there; "
                     "use --runs-dir to look in another runs folder.")
