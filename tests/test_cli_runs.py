"""`kdtui runs ls/show` for scripts: untruncated piped output, json/csv, sort and filter."""

from __future__ import annotations

import csv
import io
import json

from typer.testing import CliRunner

from kdtui.cli import app
from kdtui.store import RunDir, Summary, describe_config

runner = CliRunner()
LONG_METHOD_CONFIG = {"preset": "p", "data": {"dataset": "cifar100"}, "student": {"arch": "wrn_16_1"},
                      "teacher": {"arch": "wrn_40_2", "checkpoint": "x"},
                      "loss": {"ce": {"weight": 0.1}, "kd": {"weight": 0.9}, "at": {"weight": 1000},
                               "sp": {"weight": 3000}, "amd": {"weight": 5000}},
                      "train": {"epochs": 240}}


def make_runs(root):
    for index, (name, best, status) in enumerate([("alpha", 71.234, "finished"), ("beta", 75.5, "finished"),
                                                  ("gamma", None, "stopped")]):
        run = RunDir(root / f"20261128-10150{index}-{name}")
        run.path.mkdir(parents=True)
        run.write_config(LONG_METHOD_CONFIG)
        run.write_summary(Summary(status=status, epochs=240, epochs_done=240 if best else 3,
                                  best_test_acc=best, final_test_acc=best, teacher_test_acc=77.0,
                                  describe=describe_config(LONG_METHOD_CONFIG).to_dict()))


def ls(root, *args):
    result = runner.invoke(app, ["runs", "ls", "--runs-dir", str(root), *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_piped_listing_is_never_truncated(tmp_path):
    make_runs(tmp_path)
    lines = ls(tmp_path).splitlines()
    assert lines[0].split()[:2] == ["run", "status"]
    assert "ce+kd+at+sp+amd" in lines[1] and "71.23" in lines[3] and "…" not in "".join(lines)
    assert [line.split()[0] for line in lines[1:]] == [
        "20261128-101502-gamma", "20261128-101501-beta", "20261128-101500-alpha"]  # newest first


def test_sort_and_filter(tmp_path):
    make_runs(tmp_path)
    by_best = [line.split()[0] for line in ls(tmp_path, "--sort", "best").splitlines()[1:]]
    assert by_best == ["20261128-101501-beta", "20261128-101500-alpha", "20261128-101502-gamma"]
    ascending = [line.split()[0] for line in ls(tmp_path, "--sort", "best", "--asc").splitlines()[1:]]
    assert ascending[:2] == ["20261128-101500-alpha", "20261128-101501-beta"]  # unknown still last
    assert [line.split()[0] for line in ls(tmp_path, "--filter", "STOPPED cifar100").splitlines()[1:]] == [
        "20261128-101502-gamma"]
    # A newer run whose name sorts first tells "name" from "started" apart.
    newest = RunDir(tmp_path / "20261128-101509-aardvark")
    newest.path.mkdir()
    newest.write_config(LONG_METHOD_CONFIG)
    by_name = [line.split()[0][16:] for line in ls(tmp_path, "--sort", "name", "--asc").splitlines()[1:]]
    assert by_name == ["aardvark", "alpha", "beta", "gamma"]
    by_start = [line.split()[0][16:] for line in ls(tmp_path, "--sort", "started", "--asc").splitlines()[1:]]
    assert by_start == ["alpha", "beta", "gamma", "aardvark"]


def test_json_and_csv_keep_numbers_whole(tmp_path):
    make_runs(tmp_path)
    records = json.loads(ls(tmp_path, "--format", "json"))
    assert [r["name"] for r in records] == ["gamma", "beta", "alpha"]
    assert records[2]["best_test_acc"] == 71.234 and records[0]["best_test_acc"] is None
    rows = list(csv.DictReader(io.StringIO(ls(tmp_path, "--format", "csv", "--sort", "name", "--asc"))))
    assert [r["name"] for r in rows] == ["alpha", "beta", "gamma"] and rows[0]["best_test_acc"] == "71.234"


def test_bad_options_are_clear_errors(tmp_path):
    for args, expected in ((["--format", "xml"], "--format"), (["--sort", "speed"], "--sort")):
        result = runner.invoke(app, ["runs", "ls", "--runs-dir", str(tmp_path), *args])
        assert result.exit_code == 2 and expected in result.output


def test_show_prints_unicode_as_is(tmp_path):
    make_runs(tmp_path)
    run = RunDir(tmp_path / "20261128-101500-alpha")
    summary = run.summary()
    summary.error = "teacher → student — failed"
    run.write_summary(summary)
    result = runner.invoke(app, ["runs", "show", run.id, "--runs-dir", str(tmp_path)])
    assert result.exit_code == 0 and "→ student —" in result.output and "\\u2014" not in result.output


def make_run(root, run_id, *, lr=0.05, amd=5000, seed=0, best=70.0, status="finished", final=None):
    config = {**LONG_METHOD_CONFIG, "loss": {"ce": {"weight": 0.1}, "amd": {"weight": amd}},
              "train": {"epochs": 240, "lr": lr, "seed": seed, "device": "cpu"}}
    run = RunDir(root / run_id)
    run.path.mkdir(parents=True)
    run.write_config(config)
    run.write_summary(Summary(status=status, epochs=240, epochs_done=240, best_test_acc=best,
                              final_test_acc=best if final is None else final,
                              describe=describe_config(config).to_dict()))
    return run


def invoke(root, *args):
    return runner.invoke(app, ["runs", *args, "--runs-dir", str(root)])


def listed(root, *args):
    return [line.split()[0] for line in ls(root, *args).splitlines()[1:]]


def test_tag_note_and_rename_are_kept_in_labels_json(tmp_path):
    run = make_run(tmp_path, "20261128-101500-alpha")
    summary_before = run.summary_path.read_text()
    assert invoke(tmp_path, "tag", "alpha", "baseline", "wrn16").exit_code == 0
    assert invoke(tmp_path, "tag", "alpha", "wrn16", "--remove").exit_code == 0
    assert invoke(tmp_path, "note", "alpha", "lr too high\x07 after epoch 150").exit_code == 0
    result = invoke(tmp_path, "rename", "alpha", "amd_best")
    assert result.exit_code == 0 and "amd_best" in result.output
    labels = json.loads(run.labels_path.read_text())
    assert labels == {"tags": ["baseline"], "note": "lr too high after epoch 150", "name": "amd_best"}
    assert run.summary_path.read_text() == summary_before      # the trainer's file is untouched
    assert run.path.is_dir()                                   # the folder (the id) stays
    # The display name finds the run, and is what the listing calls it.
    shown = invoke(tmp_path, "show", "amd_best")
    assert shown.exit_code == 0 and "tags baseline" in shown.output and "note lr too high" in shown.output
    records = json.loads(ls(tmp_path, "--format", "json"))
    assert records[0]["name"] == "amd_best" and records[0]["tags"] == ["baseline"]
    assert records[0]["note"] == "lr too high after epoch 150"
    assert "baseline" in ls(tmp_path).splitlines()[1]
    # The folder's own name clears the display name.
    assert invoke(tmp_path, "rename", "amd_best", "alpha").exit_code == 0
    assert json.loads(run.labels_path.read_text())["name"] is None


def test_bad_labels_are_clear_errors(tmp_path):
    make_run(tmp_path, "20261128-101500-alpha")
    for args, expected in ((["rename", "alpha", "../escape"], "Run name '../escape' is not allowed"),
                           (["rename", "alpha", "a/b"], "is not allowed"),
                           (["tag", "alpha", "no spaces"], "Tag 'no spaces' is not allowed"),
                           (["note", "alpha", "x" * 2001], "keep it under 2000"),
                           (["tag", "nosuch", "x"], "No run 'nosuch'")):
        result = invoke(tmp_path, *args)
        assert result.exit_code == 2 and expected in result.output, (args, result.output)
    assert not (tmp_path / "escape").exists() and not (tmp_path.parent / "escape").exists()


def test_filter_by_config_value_and_tag(tmp_path):
    make_run(tmp_path, "20261128-101500-a", lr=0.05, amd=1000)
    make_run(tmp_path, "20261128-101501-b", lr=0.1, amd=5000)
    make_run(tmp_path, "20261128-101502-c", lr=0.05, amd=5000)
    assert invoke(tmp_path, "tag", "a", "baseline").exit_code == 0
    assert listed(tmp_path, "--filter", "loss.amd.weight>1000") == ["20261128-101502-c", "20261128-101501-b"]
    assert listed(tmp_path, "--filter", "lr=0.05") == ["20261128-101502-c", "20261128-101500-a"]
    assert listed(tmp_path, "--filter", "lr=0.05", "--filter", "amd.weight>=5000") == ["20261128-101502-c"]
    assert listed(tmp_path, "--filter", "lr!=0.05") == ["20261128-101501-b"]
    assert listed(tmp_path, "--filter", "amd.weight<=1000 dataset=cifar100") == ["20261128-101500-a"]
    assert listed(tmp_path, "--filter", "tag:baseline") == ["20261128-101500-a"]
    assert listed(tmp_path, "--filter", "baseline") == ["20261128-101500-a"]   # words search tags too


def test_filter_keys_ambiguous_or_unknown_list_candidates(tmp_path):
    make_run(tmp_path, "20261128-101500-a")
    result = invoke(tmp_path, "ls", "--filter", "weight>1")
    assert result.exit_code == 2 and "ambiguous" in result.output
    assert "loss.amd.weight" in result.output and "loss.ce.weight" in result.output
    result = invoke(tmp_path, "ls", "--filter", "lrr=0.1")
    assert result.exit_code == 2 and "No run has a config key 'lrr'" in result.output
    assert "train.lr" in result.output
    result = invoke(tmp_path, "ls", "--filter", "lr>high")
    assert result.exit_code == 2 and "compares numbers" in result.output
    result = invoke(tmp_path, "ls", "--columns", "seedx")
    assert result.exit_code == 2 and "train.seed" in result.output


def test_config_columns(tmp_path):
    make_run(tmp_path, "20261128-101500-a", lr=0.05, amd=1000)
    make_run(tmp_path, "20261128-101501-b", lr=0.1, amd=5000)
    lines = ls(tmp_path, "--columns", "loss.amd.weight,lr").splitlines()
    assert lines[0].split()[-2:] == ["loss.amd.weight", "train.lr"]
    assert lines[1].split()[-2:] == ["5000", "0.1"] and lines[2].split()[-2:] == ["1000", "0.05"]
    records = json.loads(ls(tmp_path, "--format", "json", "--columns", "lr"))
    assert [r["train.lr"] for r in records] == [0.1, 0.05]
    rows = list(csv.DictReader(io.StringIO(ls(tmp_path, "--format", "csv", "--columns", "amd.weight"))))
    assert [r["loss.amd.weight"] for r in rows] == ["5000", "1000"]


def test_group_seeds_mean_and_sample_std(tmp_path):
    for index, (seed, best) in enumerate([(0, 70.0), (1, 72.0), (2, 74.0)]):
        make_run(tmp_path, f"20261128-10150{index}-amd_s{seed}", seed=seed, best=best, final=best - 1 - index)
    make_run(tmp_path, "20261128-101505-other", amd=1000, best=60.0)            # another config
    make_run(tmp_path, "20261128-101506-live", best=10.0, status="stopped")    # not finished
    records = json.loads(ls(tmp_path, "--group-seeds", "--format", "json", "--sort", "best"))
    assert [r["n"] for r in records] == [3, 1, 1]
    assert records[0]["best_test_acc"] == 72.0 and records[0]["best_test_acc_std"] == 2.0   # ddof=1
    assert records[0]["runs"] == ["20261128-101502-amd_s2", "20261128-101501-amd_s1", "20261128-101500-amd_s0"]
    assert records[1]["id"] == "20261128-101505-other" and records[1]["best_test_acc_std"] is None
    table = ls(tmp_path, "--group-seeds", "--sort", "best")
    assert "72.00 ± 2.00" in table.splitlines()[1] and table.splitlines()[1].split()[-1] == "3"
    # final accuracy is the group's mean too (69, 70, 71), never the newest seed's alone (71)
    assert records[0]["final_test_acc"] == 70.0 and "final % (mean)" in table.splitlines()[0]
    assert " 70.00 " in table.splitlines()[1]
