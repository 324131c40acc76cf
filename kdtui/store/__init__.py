"""The run store: one folder per run under the runs root, and the only code that knows
its files' format — writing them (from engine events) and reading them back, typed.

Layout of ``<root>/<YYYYmmdd-HHMMSS>-<name>/`` (the folder name is the run id)::

    config.yaml          complete resolved config (re-running it reproduces the run)
    metrics.jsonl        one record per line, flushed per line: step and epoch records
    summary.json         status, epochs, accuracies; replaced atomically
    checkpoints/last.pt  checkpoints/best.pt (atomic)
    log.txt
    eval/                what `kdtui eval` computed (kdtui.analysis), a cache

Modules: :mod:`.records` (the typed records: the file format both ways), :mod:`.folders`
(run folders, names, atomic writes), :mod:`.writer` (the event sink), :mod:`.liveness`
(is the writer alive, one trainer per run), :mod:`.catalogue` (listing, delete, resume
checks), :mod:`.follow` (tailing a live run, its history and progress), :mod:`.export`
(config diff, CSV), :mod:`.announce` (runs a child process created). Readers see folders
while they are written, so every reader tolerates missing files and a torn last line.

Usage::

    run = create_run(runs_root(), "quickstart")
    sink = RunStoreWriter(run)                   # gets the engine's events
    for row in list_run_rows(runs_root()): print(row.id, row.status, row.best_acc)
"""

from kdtui.store.catalogue import (RunRow, check_deletable, check_resumable, delete_run,
                                   list_run_rows, read_run_row)
from kdtui.store.folders import (RUN_ID, RUN_NAME, RunDir, atomic_write_bytes, atomic_write_text,
                                 check_run_name, create_run, iter_runs, read_jsonl, resolve_run,
                                 runs_root)
from kdtui.store.liveness import (LIVE, RESUMABLE, claim, effective_status, process_alive,
                                  process_start_ticks, training_lock, writer_alive)
from kdtui.store.records import (EpochRecord, RunDescription, StepRecord, StudyRecord, Summary,
                                 describe_config, method_label)
from kdtui.store.writer import RunStoreWriter, starting_summary

__all__ = [
    "LIVE", "RESUMABLE", "RUN_ID", "RUN_NAME", "EpochRecord", "RunDescription", "RunDir", "RunRow",
    "RunStoreWriter", "StepRecord", "StudyRecord", "Summary", "atomic_write_bytes", "atomic_write_text",
    "check_deletable", "check_resumable", "claim", "check_run_name", "create_run", "delete_run",
    "describe_config", "effective_status", "iter_runs", "list_run_rows", "method_label",
    "process_alive", "process_start_ticks", "read_jsonl", "read_run_row", "resolve_run",
    "runs_root", "starting_summary", "training_lock", "writer_alive",
]
