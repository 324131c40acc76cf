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
