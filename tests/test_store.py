"""The run store: typed records, following a growing run, listing, diffs, CSV; and the
app's series helpers."""

from __future__ import annotations

import csv
import json
import math
import os
import socket
import subprocess

import pytest

from kdtui.losses import loss_label
from kdtui.store import (EpochRecord, RunDescription, RunDir, StepRecord, Summary, atomic_write_text,
                         describe_config, effective_status, list_run_rows, method_label, read_run_row)
from kdtui.store.announce import announce
from kdtui.store.export import config_diff, export_epochs_csv, flatten
from kdtui.store.follow import RunFollower, RunHistory, run_progress
from kdtui.store.records import is_step_line, parse_line, parse_record, record_line
from kdtui.tui.process import Launch
from kdtui.tui.series import IncrementalEma, downsample, ema, log10_values, normalized


def make_run(root, run_id="20261128-101500-demo", epochs=0, summary=None, config=None):
    path = root / run_id
    path.mkdir(parents=True)
    run = RunDir(path)
    if config is not False:
        run.write_config(config or {"preset": "demo", "data": {"dataset": "shapes"},
                                    "student": {"arch": "wrn_16_1"},
                                    "teacher": {"arch": "wrn_16_3", "checkpoint": "x"},
                                    "loss": {"ce": {"weight": 0.1}, "kd": {"weight": 0.9},
                                             "amd": {"weight": 0.0}},
                                    "train": {"epochs": 4}})
    if summary is not None:
        run.write_summary(summary)
    with run.metrics_path.open("a") as handle:
        for epoch in range(1, epochs + 1):
            handle.write(json.dumps(epoch_record(epoch)) + "\n")
    return run


def epoch_record(epoch, acc=None):
    return {"event": "epoch", "epoch": epoch, "epochs": 4, "lr": 0.1 / epoch,
            "loss": {"CE": 2.0 / epoch, "KD": 1.0 / epoch, "total": 3.0 / epoch},
            "train_acc": 10.0 * epoch, "test_acc": acc if acc is not None else 9.0 * epoch,
            "best_test_acc": 9.0 * epoch, "best_epoch": epoch, "img_per_s": 100.0, "time_s": 1.5,
            "time": 1000.0 + epoch}


def step_record(global_step, total):
    return {"event": "step", "epoch": 1, "step": global_step, "steps_per_epoch": 10,
            "global_step": global_step, "lr": 0.1, "loss": {"CE": total / 2, "total": total},
            "img_per_s": 50.0, "time": 1000.0 + global_step}


def test_follower_reads_only_new_complete_lines(tmp_path):
    run = make_run(tmp_path, epochs=1, summary={"status": "running"})
    follower = RunFollower(run)
    first = follower.poll()
    assert [r.epoch for r in first.records] == [1]
    assert first.summary == Summary(status="running")
    assert follower.poll().records == [] and follower.poll().summary is None  # nothing changed
    with run.metrics_path.open("a") as handle:
        handle.write(json.dumps(epoch_record(2)) + "\n" + '{"event": "epoch", "ep')  # torn tail
    assert [r.epoch for r in follower.poll().records] == [2]
    with run.metrics_path.open("a") as handle:
        handle.write('och": 3}\n')  # the writer completes the line
    assert follower.poll().records == [EpochRecord(epoch=3)]


def test_follower_starts_over_when_a_resume_rewrites_the_metrics(tmp_path):
    run = make_run(tmp_path, epochs=3)
    follower = RunFollower(run)
    assert len(follower.poll().records) == 3
    run.truncate_metrics(1)  # what a resume does: atomic rewrite keeping epoch 1
    update = follower.poll()
    assert update.reset and [r.epoch for r in update.records] == [1]


def test_follower_skips_corrupt_lines_and_missing_files(tmp_path):
    path = tmp_path / "20261128-101500-empty"
    path.mkdir()
    follower = RunFollower(RunDir(path))
    assert follower.poll().records == []
    (path / "metrics.jsonl").write_text('garbage\n[1, 2]\n{"event": "epoch", "epoch": 1}\n')
    assert follower.poll().records == [EpochRecord(epoch=1)]


def test_history_series_terms_and_best():
    history = RunHistory()
    history.add(map(parse_record, [step_record(1, 4.0), step_record(2, 3.0), epoch_record(1),
                                   epoch_record(2, acc=5.0)]))
    assert history.terms == ["CE", "total"]
    assert history.step_x == [1, 2] and history.step_loss["total"] == [4.0, 3.0]
    assert history.epoch_series("test_acc") == ([1, 2], [9.0, 5.0])
    rows = {name: (latest, best) for name, latest, best in history.latest_and_best()}
    assert [name for name, _, _ in history.latest_and_best()][:2] == ["test acc %", "train acc %"]
    assert history.best_epoch() == 1
    assert rows["test acc %"] == (5.0, 9.0)           # accuracy: best is the highest
    assert rows["loss total"] == (1.5, 1.5)           # latest and best are epoch means
    history = RunHistory()
    history.add([parse_record(step_record(1, 4.0))])
    assert {n: l for n, l, _ in history.latest_and_best()}["loss total"] == 4.0  # no epoch yet


def test_history_aligns_a_term_that_appears_later():
    history = RunHistory()
    history.add([parse_record(step_record(1, 4.0))])
    later = step_record(2, 3.0)
    later["loss"]["AMD"] = 0.5
    history.add([parse_record(later)])
    assert len(history.step_loss["AMD"]) == 2 and math.isnan(history.step_loss["AMD"][0])


def test_ema_matches_tensorboard_debiased_smoothing():
    assert ema([1.0, 2.0, 3.0], 0.0) == [1.0, 2.0, 3.0]
    smoothed = ema([1.0, 3.0], 0.5)
    assert smoothed[0] == pytest.approx(1.0)                     # no pull towards 0
    assert smoothed[1] == pytest.approx((0.25 + 1.5) / 0.75)    # debiased 0.5·1 + 0.5·3
    assert math.isnan(ema([1.0, math.nan, 2.0], 0.5)[1])


def test_incremental_ema_equals_the_full_computation_as_the_series_grows():
    values = [float(v % 7) for v in range(50)] + [math.nan, 3.0]
    smoother = IncrementalEma()
    for end in (5, 20, 52):
        got = smoother.update(values[:end], 0.9)
        want = ema(values[:end], 0.9)
        assert [g for g in got if g == g] == pytest.approx([w for w in want if w == w])
    assert smoother.update(values[:3], 0.9) == pytest.approx(ema(values[:3], 0.9))  # reset: shorter
    assert smoother.update(values[:3], 0.5) == pytest.approx(ema(values[:3], 0.5))  # new smoothing


def test_downsample_keeps_length_bound_and_bucket_means():
    xs = list(range(1000))
    ys = [float(x) for x in xs]
    dx, dy = downsample(xs, ys, 100)
    assert len(dx) == 100 and dx[-1] == 999
    assert dy[0] == pytest.approx(sum(range(10)) / 10)
    assert downsample([1, 2], [3.0, 4.0], 100) == ([1, 2], [3.0, 4.0])


def test_round_ticks_and_their_labels():
    from kdtui.tui.panels.lr import staircase
    from kdtui.tui.series import log_tick_labels, nice_ticks, spans_decades, tick_label

    assert nice_ticks(2, 120, 7, integer=True) == [20, 40, 60, 80, 100, 120]
    assert nice_ticks(28.8, 66.2, 5, integer=True) == [30, 40, 50, 60]
    assert nice_ticks(-0.05, 0.31, 5) == [0.0, 0.1, 0.2, 0.3]
    assert tick_label(-0.0) == "0" and tick_label(-1e-17) != "-0"
    ticks, labels = log_tick_labels(-5.2, 0.4, 8)
    assert ticks == [-5, -4, -3, -2, -1, 0] and labels == ["1e-05", "0.0001", "0.001", "0.01", "0.1", "1"]
    assert spans_decades([[2.0, 1.0], [1e-5, 2e-5]]) and not spans_decades([[2.0], [0.05]])
    assert staircase({1: 0.1, 2: 0.1, 3: 0.01}) == ([0, 1, 1, 2, 2, 3], [0.1, 0.1, 0.1, 0.1, 0.01, 0.01])


def test_log_and_normalised_scales():
    assert log10_values([100.0, 0.0, -1.0])[0] == 2.0
    assert all(math.isnan(v) for v in log10_values([0.0, -1.0]))
    assert normalized([2.0, 4.0]) == [0.5, 1.0]


def test_method_label_lists_active_terms_with_the_registry_labels():
    loss = {"ce": {"weight": 0.1}, "kd": 0.9, "amd": {"weight": 5000, "local": True}}
    assert method_label(loss) == "ce+kd+amd"
    assert method_label(loss, loss_label) == "ce+kd+amd(g+l)"
    assert method_label({"ce": 1.0, "amd": {"weight": 2}}, loss_label) == "ce+amd(g)"
    assert method_label({"ce": 1.0, "amd": {"weight": 0}}) == "ce"


def test_config_diff_only_differing_and_missing_keys():
    a = {"train": {"lr": 0.1, "epochs": 4}, "loss": {"kd": {"weight": 0.9}}}
    b = {"train": {"lr": 0.05, "epochs": 4}}
    assert flatten(a)["loss.kd.weight"] == 0.9
    diff = dict(config_diff([a, b]))
    assert diff == {"train.lr": ["0.1", "0.05"], "loss.kd.weight": ["0.9", "—"]}
    assert "train.epochs" in dict(config_diff([a, b], only_differing=False))


def test_export_csv_has_a_row_per_epoch_and_a_column_per_term(tmp_path):
    runs = [make_run(tmp_path, "20261128-101500-a", epochs=2), make_run(tmp_path, "20261128-101501-b", epochs=1)]
    out = tmp_path / "exports" / "e.csv"
    assert export_epochs_csv(runs, out) == 3
    rows = list(csv.DictReader(out.open()))
    assert [r["run"] for r in rows] == ["20261128-101500-a"] * 2 + ["20261128-101501-b"]
    assert float(rows[1]["loss_KD"]) == 0.5 and float(rows[1]["test_acc"]) == 18.0


def test_rows_tolerate_broken_folders_and_flag_dead_running_runs(tmp_path):
    make_run(tmp_path, "20261128-101500-ok", epochs=2,
             summary={"status": "finished", "best_test_acc": 18.0, "epochs_done": 2, "epochs": 4})
    (tmp_path / "20261128-101501-empty").mkdir()
    bad = make_run(tmp_path, "20261128-101502-badsummary")
    bad.summary_path.write_text("{not json")
    dead = subprocess.Popen(["true"])
    dead.wait()
    make_run(tmp_path, "20261128-101503-killed",
             summary={"status": "running", "pid": dead.pid, "host": socket.gethostname()})
    rows = {row.name: row for row in list_run_rows(tmp_path)}
    assert rows["ok"].best_acc == 18.0 and rows["ok"].pair == "wrn_16_3 → wrn_16_1"
    assert rows["ok"].method == "ce+kd"
    assert rows["empty"].status == "broken"
    assert rows["badsummary"].status == "broken" and "unreadable" in rows["badsummary"].error
    assert rows["killed"].status == "crashed"


def test_a_run_without_a_readable_summary_is_listed_broken_from_its_metrics(tmp_path):
    make_run(tmp_path, "20261128-101500-missing", epochs=3)
    bad = make_run(tmp_path, "20261128-101501-bad", epochs=3)
    bad.summary_path.write_text("{not json")
    make_run(tmp_path, "20261128-101502-new")            # config only: a run starting now
    rows = {row.name: row for row in list_run_rows(tmp_path)}
    for name in ("missing", "bad"):
        row = rows[name]
        assert (row.status, row.epochs_done, row.epochs) == ("broken", 3, 4)
        assert row.best_acc == 27.0 and row.final_acc == 27.0      # from the epoch records
        assert "metrics.jsonl holds 3 epoch(s)" in row.error
    assert rows["new"].status == "starting" and rows["new"].error == ""


def test_metrics_cut_mid_line_make_a_finished_run_broken(tmp_path):
    run = make_run(tmp_path, epochs=3, summary={"status": "finished", "epochs": 3, "epochs_done": 3,
                                                 "best_test_acc": 27.0, "final_test_acc": 27.0})
    assert read_run_row(run).status == "finished"
    text = run.metrics_path.read_text()
    run.metrics_path.write_text(text[:-20])               # the last epoch line cut mid-line
    row = read_run_row(run)
    assert (row.status, row.epochs_done, row.best_acc) == ("broken", 2, 18.0)
    assert "holds 2 of the 3 epochs" in row.error
    history = RunHistory()
    history.add(run.epochs())
    progress = run_progress(run.summary(), history, run_id=run.id)
    assert (progress.status, progress.epoch, progress.best_acc, progress.best_epoch) == ("broken", 2, 18.0, 2)


def test_last_recorded_epoch_reads_only_the_tail_past_step_lines(tmp_path):
    from kdtui.store.catalogue import last_recorded_epoch

    run = make_run(tmp_path, epochs=2)
    with run.metrics_path.open("a") as handle:   # far more step lines than one tail chunk holds
        for step in range(1, 2000):
            handle.write(json.dumps(step_record(step, 1.0)) + "\n")
        handle.write('{"event": "epoch", "epoch": 3, "te')   # torn: not counted
    assert last_recorded_epoch(run.metrics_path) == 2
    assert last_recorded_epoch(tmp_path / "none.jsonl") is None     # no file: nothing to hold against


def test_progress_of_a_run_without_summary_comes_from_its_records():
    history = RunHistory()
    history.add(map(parse_record, [epoch_record(1), epoch_record(2, acc=30.0), epoch_record(3, acc=20.0)]))
    progress = run_progress(None, history, run_id="x")
    assert (progress.status, progress.epoch, progress.epochs) == ("broken", 3, 4)
    assert (progress.test_acc, progress.best_acc, progress.best_epoch) == (20.0, 30.0, 2)
    assert run_progress(None, RunHistory()).status == "starting"
    # A summary with no metrics.jsonl beside it (a fabricated or trimmed folder) is believed.
    assert run_progress(Summary(status="finished", epochs_done=3), RunHistory()).status == "finished"
    assert run_progress(None, RunHistory(), summary_unreadable=True).status == "broken"


def test_effective_status_trusts_other_hosts_and_checks_live_processes():
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        here = socket.gethostname()
        assert effective_status(Summary(status="running", pid=sleeper.pid, host=here)) == "running"
        assert effective_status(Summary(status="running", pid=1, host="elsewhere")) == "running"
        assert effective_status(Summary(status="finished")) == "finished"
    finally:
        sleeper.kill()
        sleeper.wait()


def test_launch_reports_announced_runs_in_order(tmp_path):
    launch = Launch.start(["--help"], tmp_path)  # a real child that exits at once
    assert launch.process.wait(timeout=60) == 0
    assert launch.announced() == []
    announce(launch.announce_path, RunDir(tmp_path / "20261128-101500-t"), "teacher")
    announce(launch.announce_path, RunDir(tmp_path / "20261128-101501-s"), "student")
    assert launch.announced() == [(tmp_path / "20261128-101500-t", "teacher"),
                                  (tmp_path / "20261128-101501-s", "student")]
    assert "Usage" in launch.output_tail()
    assert not any(p.name.startswith("2026") for p in tmp_path.iterdir())  # no run folder made


def test_atomic_summary_is_never_seen_half_written(tmp_path):
    # The follower reads summary.json whenever its mtime changes; writes are atomic renames.
    run = make_run(tmp_path)
    follower = RunFollower(run)
    for n in range(20):
        atomic_write_text(run.summary_path, json.dumps({"status": "running", "n": n}))
        summary = follower.poll().summary
        assert summary is None or summary.status == "running"
    assert os.listdir(run.path).count("summary.json") == 1


def test_rows_read_the_summary_description_or_else_the_config(tmp_path):
    # A run writes describe_config(...) into summary.json at start, so listing 1000 runs
    # parses no YAML; older or half-made runs fall back to config.yaml, with the same row.
    run = make_run(tmp_path, summary={"status": "finished"})
    from_config = read_run_row(run)
    run.write_summary(Summary(status="finished", describe=describe_config(run.read_config()).to_dict()))
    run.config_path.unlink()
    from_summary = read_run_row(run)
    assert (from_summary.dataset, from_summary.student, from_summary.teacher, from_summary.method,
            from_summary.epochs) == (from_config.dataset, from_config.student, from_config.teacher,
                                     from_config.method, from_config.epochs) == ("shapes", "wrn_16_1", "wrn_16_3", "ce+kd", 4)
    assert describe_config({"data": 7, "teacher": None}) == RunDescription(
        dataset="?", student="?", teacher="-", method="?", epochs=None)


def test_summary_rewrite_is_seen_even_with_an_unchanged_mtime(tmp_path):
    # Coarse-timestamp filesystems: the last two writes of a run may share an mtime.
    run = make_run(tmp_path, summary={"status": "running"})
    follower = RunFollower(run)
    first = run.summary_path.stat()
    assert follower.poll().summary.status == "running"
    run.write_summary({"status": "finished"})
    os.utime(run.summary_path, ns=(first.st_atime_ns, first.st_mtime_ns))
    assert follower.poll().summary == Summary(status="finished")


def test_liveness_rejects_special_and_reused_pids():
    from kdtui.store import process_alive, process_start_ticks

    here = socket.gethostname()
    for pid in (0, 1, -1, 2**80, True):
        assert not process_alive(pid, here)
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        start = process_start_ticks(sleeper.pid)
        assert process_alive(sleeper.pid, here, start)
        if start is not None:  # Linux: a pid now owned by a process started at another time
            assert not process_alive(sleeper.pid, here, start + 1)
    finally:
        sleeper.kill()
        sleeper.wait()


def test_a_run_folder_is_trained_by_one_process_at_a_time(tmp_path):
    from kdtui.errors import KdtuiError
    from kdtui.store import training_lock

    run = make_run(tmp_path)
    with training_lock(run):
        with pytest.raises(KdtuiError, match="being trained by another process"):
            with training_lock(run):
                pass
    with training_lock(run):  # released
        pass


def test_a_run_training_on_another_machine_cannot_be_deleted(tmp_path):
    from kdtui.errors import KdtuiError
    from kdtui.store import check_deletable

    run = make_run(tmp_path, summary={"status": "running", "pid": 4242, "host": "gpu-node-7"})
    with pytest.raises(KdtuiError, match="still running"):
        check_deletable(tmp_path, run)


# --- the typed records -----------------------------------------------------------------

def test_summary_from_dict_tolerates_old_partial_and_ill_typed_files():
    summary = Summary.from_dict({"status": "finished", "epochs_done": "three", "best_test_acc": 71,
                                 "pid": True, "host": 5, "from_the_future": [1, 2]})
    assert summary.status == "finished" and summary.epochs_done == 0      # default, not "three"
    assert summary.best_test_acc == 71.0 and isinstance(summary.best_test_acc, float)
    assert summary.pid is None and summary.host is None                  # bool and int rejected
    assert summary.to_dict()["from_the_future"] == [1, 2]                # unknown keys kept
    assert Summary.from_dict(None) == Summary() and Summary.from_dict([1]) == Summary()
    assert Summary.from_dict(Summary(status="x", teacher_test_acc=80.5).to_dict()) == Summary(
        status="x", teacher_test_acc=80.5)


def test_records_round_trip_and_step_lines_are_recognised_unparsed():
    step = StepRecord(epoch=2, step=5, steps_per_epoch=10, global_step=15, lr=0.1,
                      loss={"CE": 1.5, "total": 1.5}, img_per_s=99.0, time=1.0)
    epoch = EpochRecord(epoch=2, epochs=3, lr=0.1, loss={"total": 1.0}, train_acc=50.0,
                        test_acc=40.0, best_test_acc=40.0, best_epoch=2, img_per_s=9.0,
                        time_s=3.0, time=2.0)
    for record in (step, epoch):
        line = record_line(record)
        assert parse_line(line) == record and line.endswith("\n")
    assert is_step_line(record_line(step)) and not is_step_line(record_line(epoch))
    assert parse_record({"event": "epoch"}) is None                      # no epoch number
    assert parse_record({"event": "start", "epoch": 1}) is None          # not a metrics record
    assert parse_record({"event": "epoch", "epoch": 1, "loss": {"KD": "nan?"}}).loss["KD"] != 0


def test_epochs_skip_step_lines_and_read_epoch_records_typed(tmp_path):
    run = make_run(tmp_path, epochs=2)
    with run.metrics_path.open("a") as handle:
        handle.write(json.dumps(step_record(3, 2.0)) + "\n")
    assert [(r.epoch, r.test_acc) for r in run.epochs()] == [(1, 9.0), (2, 18.0)]
    assert [type(r).__name__ for r in run.records()] == ["EpochRecord", "EpochRecord", "StepRecord"]


def test_only_the_store_reads_the_record_files_raw():
    """Every reader goes through the typed records: nothing outside kdtui/store calls the raw
    readers or picks summary/metrics keys by string."""
    import pathlib

    package = pathlib.Path(__file__).resolve().parent.parent / "kdtui"
    offenders = []
    for path in package.rglob("*.py"):
        if "store" in path.relative_to(package).parts[:1]:
            continue
        text = path.read_text(encoding="utf-8")
        for needle in (".read_summary(", ".read_metrics(", "summary.get(", "summary[", "record.get(",
                       'record["', '"event") =='):
            if needle in text:
                offenders.append(f"{path.relative_to(package)}: {needle}")
    assert offenders == []


def test_environment_fields_for_the_viewer_and_the_diff():
    from kdtui.store.records import environment_fields

    record = {"started": {"kdtui": "0.1.0", "git": {"commit": "0123456789abcdef", "dirty": True},
                          "torch": "2.14.1", "cuda": None, "gpus": ["H100", "H100"], "cpu_count": 16,
                          "command": ["kdtui", "run", "x.yaml"]}, "resumed": []}
    fields = environment_fields(record)
    assert fields["env.kdtui"] == "0.1.0 (0123456789, dirty)" and fields["env.torch"] == "2.14.1"
    assert "env.cuda" not in fields and fields["env.gpus"] == "H100, H100"
    assert fields["env.command"] == "kdtui run x.yaml" and fields["env.cpu_count"] == "16"
    assert environment_fields(None) == {} == environment_fields({"started": 3})
    assert environment_fields({"started": {"kdtui": "0.1.0", "git": None}})["env.kdtui"] == "0.1.0"


def test_labels_survive_a_corrupt_file_and_a_summary_rewrite(tmp_path):
    from kdtui.store import read_run_row
    from kdtui.store.labels import rename_run, set_note, set_tags

    run = RunDir(tmp_path / "20261128-101500-alpha")
    run.path.mkdir()
    run.write_summary(Summary(status="running"))
    run.labels_path.write_text("{not json")
    row = read_run_row(run)                         # a corrupt labels.json lists as no labels
    assert row.tags == () and row.note == "" and row.name == "alpha"
    set_tags(run, add=["b", "a", "b"])
    set_note(run, "  first try\n")
    rename_run(run, "renamed")
    run.write_summary(Summary(status="finished"))   # the trainer's rewrite leaves labels alone
    row = read_run_row(run)
    assert row.tags == ("b", "a") and row.note == "first try" and row.name == "renamed"
    assert row.id == "20261128-101500-alpha" and "renamed" in row.search_text()
    assert [p.name for p in run.path.iterdir() if p.name.startswith(".")] == []   # no temp files left


def test_query_conditions_compare_numbers_as_numbers_and_the_rest_as_text(tmp_path):
    from kdtui.errors import KdtuiError
    from kdtui.store import RunRow
    from kdtui.store.query import parse_query

    def row(name, config):
        return RunRow(id=f"20261128-101500-{name}", path=tmp_path / name, status="finished", _config=config)

    rows = [row("a", {"train.lr": 0.05, "train.amp": True, "data.dataset": "cifar100", "loss.amd.weight": 5000.0}),
            row("b", {"train.lr": 0.1, "train.amp": False, "data.dataset": "cifar10"})]
    names = lambda text: [r.name for r in parse_query(text).filter(rows)]   # noqa: E731
    assert names("lr=5e-2") == ["a"] and names("lr>0.05") == ["b"] and names("lr<=0.1") == ["a", "b"]
    assert names("amp=true") == ["a"] and names("dataset=CIFAR10") == ["b"]
    assert names("amd.weight=5000") == ["a"]                       # 5000.0 in the config
    assert names("amd.weight!=5000") == ["b"] and names("amd.weight>0") == ["a"]   # b has no such key
    with pytest.raises(KdtuiError, match="no value"):
        parse_query("lr=")
    with pytest.raises(KdtuiError, match="tag:NAME"):
        parse_query("tag:")
