"""Studies without training: the study file's checks, expansion and override order, the
shipped study files, and `kdtui table` (grouping, statistics, formats, the Figure 6
scatter) on a generated run store."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from kdtui.cli import app
from kdtui.errors import ConfigError
from kdtui.store import EpochRecord, Summary, create_run, iter_runs, runs_root
from kdtui.study.expand import expand_study, render_override
from kdtui.study.formats import render
from kdtui.study.scatter import pearson
from kdtui.study.spec import find_study, list_studies, load_study
from kdtui.study.table import build_table, collect_runs

runner = CliRunner()
SHIPPED = Path(__file__).resolve().parent.parent / "presets" / "studies"


def kdtui(*args: str):
    result = runner.invoke(app, list(args))
    result.flat = " ".join(result.output.split())
    return result


def write_study(folder: Path, body: dict, name: str = "study.yaml") -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump({"name": "s", **body}, sort_keys=False), encoding="utf-8")
    return path


# --- the study file ------------------------------------------------------------------

def test_grid_times_seeds_with_names_and_the_override_order(tiny_presets, tmp_path):
    path = write_study(tmp_path, {
        "base": "tiny_student",
        "set": {"train.lr": 0.2, "train.epochs": 2, "train.batch_size": 8},
        "grid": {"loss.amd.weight": [7, 8], "loss.kd.temperature": [2, 3]},
        "seeds": [3, 4]})
    cli = ["train.lr=0.3", "train.batch_size=16", "loss.amd.weight=1", "train.seed=9"]
    runs = expand_study(load_study(path), cli)
    assert len(runs) == 8 and [r.number for r in runs] == list(range(1, 9))
    # seeds outermost (every point once before any point twice), grid in file order
    assert [(r.index, r.seed) for r in runs] == [(i, s) for s in (3, 4) for i in (1, 2, 3, 4)]
    assert [r.point for r in runs[:2]] == [
        {"loss.amd.weight": 7, "loss.kd.temperature": 2, "train.seed": 3},
        {"loss.amd.weight": 7, "loss.kd.temperature": 3, "train.seed": 3}]
    assert runs[5].name == "s-p2-s4"
    cfg = runs[3].config                       # base < set < CLI < point < seed
    assert cfg.train.lr == 0.3 and cfg.train.batch_size == 16 and cfg.train.epochs == 2
    assert cfg.loss["amd"].weight == 8 and cfg.loss["kd"].temperature == 3 and cfg.train.seed == 3
    assert runs[0].overrides == ["train.lr=0.2", "train.epochs=2", "train.batch_size=8", *cli,
                                 "loss.amd.weight=7", "loss.kd.temperature=2", "train.seed=3"]
    assert runs[0].study_record("s") == {"id": "s", "point": runs[0].point, "index": 1}


def test_points_with_their_own_presets_and_paths_relative_to_the_study(tiny_presets, tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "mine.yaml").write_text((tiny_presets / "tiny_teacher.yaml").read_text())
    path = write_study(tmp_path / "sub", {
        "base": "../mine.yaml",
        "points": [{"train.lr": 0.01}, {"preset": "tiny_student", "loss.kd.temperature": 2,
                                        "reported": 86.3}, None],
        "source": "paper, Fig. 1"})
    runs = expand_study(load_study(path))
    assert [r.config.preset for r in runs] == ["mine", "tiny_student", "mine"]
    assert runs[0].config.train.lr == 0.01 and runs[2].describe() == "(base)"
    assert runs[1].point == {"preset": "tiny_student", "loss.kd.temperature": 2, "train.seed": 0}
    assert runs[1].study_record("s")["reported"] == {"value": 86.3, "source": "paper, Fig. 1"}
    assert [r.name for r in runs] == ["s-p1-s0", "s-p2-s0", "s-p3-s0"]


def test_reported_values_by_grid_value_or_by_where(tiny_presets, tmp_path):
    path = write_study(tmp_path, {
        "base": "tiny_student", "source": "Fig. 8a",
        "grid": {"preset": ["tiny_student"], "loss.amd.weight": [1000, 5000]},
        "reported": {"loss.amd.weight": {1000: 85.3, 5000: {"value": 86.3, "source": "Fig. 8b"}}}})
    runs = expand_study(load_study(path))
    assert [r.reported.to_dict() for r in runs] == [{"value": 85.3, "source": "Fig. 8a"},
                                                    {"value": 86.3, "source": "Fig. 8b"}]
    path = write_study(tmp_path, {
        "base": "tiny_student", "grid": {"loss.amd.weight": [1000, 5000], "train.lr": [0.1, 0.2]},
        "reported": [{"where": {"loss.amd.weight": 5000, "train.lr": 0.2}, "value": 80, "teacher": 90}]})
    runs = expand_study(load_study(path))
    assert [r.reported is not None for r in runs] == [False, False, False, True]
    assert runs[3].reported.teacher == 90


@pytest.mark.parametrize("body,needle", [
    ({"base": "tiny_student", "grd": {}}, "unknown key 'grd'. Did you mean 'grid'?"),
    ({"name": "bad name", "base": "tiny_student"}, "name: got 'bad name'"),
    ({"base": "tiny_student", "grid": {"loss.amd.weight": 5}}, "grid: loss.amd.weight: got 5, expected a non-empty list"),
    ({"base": "tiny_student", "grid": {"trian.lr": [1]}}, "unknown section 'trian'. Did you mean 'train'?"),
    ({"base": "tiny_student", "grid": {"train.lr": [1]}, "points": [{}]}, "either grid"),
    ({"base": "tiny_student", "seeds": [0, 0]}, "seeds: got [0, 0]"),
    ({"base": "tiny_student", "points": [{"train.lr": 1}, {"train.lr": 1}]}, "points[2]: the same point"),
    ({"base": "tiny_student", "points": [{"reported": "high"}]}, "points[1]: reported: got 'high'"),
    ({"points": [{"train.lr": 1}]}, "base: missing"),
    ({"base": "tiny_student", "grid": {"train.lr": [1]}, "reported": {"train.lr": {2: 80}}},
     "where train.lr: 2 matches no grid point"),
])
def test_study_file_mistakes_name_the_key(tiny_presets, tmp_path, body, needle):
    with pytest.raises(ConfigError) as info:
        load_study(write_study(tmp_path, body))
    assert needle in str(info.value)


def test_every_point_is_validated_before_anything_runs(tiny_presets, tmp_path):
    path = write_study(tmp_path, {"base": "tiny_student", "grid": {"loss.amd.weight": [1000, -1]},
                                  "seeds": [0, 1]})
    result = kdtui("sweep", str(path), "--headless")
    assert result.exit_code == 2, result.output
    assert "point 2 (loss.amd.weight=-1, seed 0): loss.amd.weight" in result.flat
    assert "Traceback" not in result.output and not runs_root().exists()
    result = kdtui("sweep", str(path), "--set", "train.lr=-5")
    assert result.exit_code == 2 and "train.lr" in result.flat and not runs_root().exists()
    result = kdtui("sweep", "no_such_study")
    assert result.exit_code == 2 and "No study named 'no_such_study'" in result.flat


def test_render_override_round_trips_through_the_config_parser():
    from kdtui.overrides import parse_override

    for value in (1000, 1.35, 1e-4, "yes", "5", "cifar10_kd", ["A", "P"], {"weight": 3}, True, None, ""):
        text = render_override("loss.amd.x", value)
        assert parse_override(text) == ("loss.amd.x", value), text


def test_the_shipped_studies_expand_and_carry_the_papers_numbers(monkeypatch):
    monkeypatch.delenv("KDTUI_PRESETS_DIR", raising=False)
    names = {info.name for info in list_studies()}
    assert {"quickstart_gamma", "gamma", "margin", "ablation_apn", "teacher_capacity", "table9"} <= names
    counts = {}
    for name in names:
        spec = load_study(find_study(name))
        assert spec.name == name and (name == "quickstart_gamma" or spec.seeds == [0, 1, 2])
        runs = expand_study(spec)
        counts[name] = len(runs)
        assert "/work/" not in (SHIPPED / f"{name}.yaml").read_text()
    assert counts["gamma"] == 15 and counts["ablation_apn"] == 24 and counts["table9"] == 69
    assert counts["teacher_capacity"] == 30 and counts["quickstart_gamma"] == 4
    gamma = {r.point["loss.amd.weight"]: r.reported.value for r in expand_study(load_study(find_study("gamma")))}
    assert gamma == {1000: 85.3, 3000: 86.0, 5000: 86.3, 7000: 85.9, 9000: 85.7}
    table9 = {r.point["preset"]: r.reported for r in expand_study(load_study(find_study("table9")))}
    assert table9["cifar10_amd_gl_wrn28_1_vgg8"].value == 87.56 and table9["cifar10_sp_vgg13_resnet20"].value == 85.0
    assert table9["cifar10_at_mobilenetv2_resnet26"].teacher == 89.61 and table9["cifar10_scratch_resnet26"].value == 85.65
    capacity = {r.config.teacher.preset for r in expand_study(load_study(find_study("teacher_capacity")))}
    assert len(capacity) == 5
    result = kdtui("presets")
    assert result.exit_code == 0 and "studies" in result.output and "quickstart_gamma" in result.output


def test_study_commands_do_not_import_torch_for_help():
    code = ("import sys\nfrom kdtui.cli import app\n"
            "for args in (['sweep', '--help'], ['table', '--help']):\n"
            "    try:\n        app(args)\n    except SystemExit:\n        pass\n"
            "assert 'torch' not in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, env={**os.environ})


# --- kdtui table on a generated run store ----------------------------------------------

def fake_run(name: str, *, weight: float, seed: int, best: float, final: float | None = None,
             status: str = "finished", teacher: float | None = 90.0, study: str | None = "g",
             reported: dict | None = None, loss: dict | None = None, index: int = 1,
             arch: str = "wrn_16_1", preset: str = "p"):
    run = create_run(runs_root(), name)
    run.write_config({"preset": preset, "description": "d", "student": {"arch": arch},
                      "loss": {"amd": {"weight": weight, "margin": 1.35}},
                      "train": {"seed": seed, "device": "cpu"}})
    point = {"loss.amd.weight": weight, "train.seed": seed}
    record = {"id": study, "point": point, "index": index} if study else None
    if record and reported:
        record["reported"] = reported
    run.write_summary(Summary(status=status, epochs=2, epochs_done=2 if status == "finished" else 1,
                              best_test_acc=best, final_test_acc=final if final is not None else best - 1,
                              teacher_test_acc=teacher, study=record))
    if loss is not None:
        run.append_record(EpochRecord(epoch=2, epochs=2, loss=loss, test_acc=best))
    return run


@pytest.fixture
def store():
    rep = {"value": 86.3, "source": "Fig. 8a"}
    fake_run("a1", weight=5000, seed=0, best=85.0, reported=rep, index=2, loss={"A": 1.0, "P": 1.0, "N": 1.0})
    fake_run("a2", weight=5000, seed=1, best=86.0, reported=rep, index=2, teacher=92.0, loss={"A": 1.0, "P": 0.5, "N": 0.5})
    fake_run("a3", weight=5000, seed=2, best=87.0, reported=rep, index=2, loss={"A": 0.5, "P": 0.25, "N": 0.25})
    fake_run("b1", weight=1000, seed=0, best=80.0, index=1, loss={"A": 3.0, "P": 1.0, "N": 1.0})
    fake_run("b2", weight=1000, seed=1, best=84.0, index=1, loss={"A": 2.0, "P": 0.5, "N": 0.5})
    fake_run("c1", weight=9000, seed=0, best=70.0, index=3, teacher=None)
    fake_run("c2", weight=9000, seed=1, best=99.0, index=3, status="stopped")
    fake_run("other", weight=3000, seed=0, best=50.0, study=None)


def test_table_groups_by_the_varying_keys_with_mean_and_sample_std(store):
    table = build_table(collect_runs(runs_root(), study="g"))
    assert table.keys == ["loss.amd.weight"]                  # seeds and run-only keys left out
    rows = {row.values[0]: row for row in table.rows}
    assert [row.values[0] for row in table.rows] == [1000, 5000, 9000]     # the study's order
    assert (rows[5000].n, rows[5000].mean, rows[5000].std) == (3, 86.0, 1.0)
    assert rows[1000].mean == 82.0 and rows[1000].std == pytest.approx(math.sqrt(8))
    assert rows[9000].n == 1 and rows[9000].std is None and rows[9000].teacher is None
    assert rows[5000].teacher == pytest.approx(272 / 3)
    assert rows[5000].reported.value == 86.3 and rows[5000].delta == pytest.approx(-0.3)
    assert [r.id.split("-", 2)[2] for r in table.unfinished] == ["c2"]
    final = build_table(collect_runs(runs_root(), study="g"), metric="final")
    assert {row.values[0]: row.mean for row in final.rows}[5000] == 85.0

    result = kdtui("table", "--study", "g")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "best test accuracy (%)" in lines[0]
    assert any(line.split() == ["5000", "3", "86.00", "±", "1.00", "90.67", "86.30", "-0.30"] for line in lines)
    assert any(line.split() == ["9000", "1", "70.00", "-", "-", "-"] for line in lines)   # no ± for n = 1
    assert "not finished (not averaged)" in result.output and "c2  stopped  1/2 epochs" in result.output
    assert "paper: Fig. 8a" in result.output


def test_table_of_named_runs_and_by_keys(store):
    ids = [run.id for run in iter_runs(runs_root()) if run.id.endswith(("-a1", "-b1", "-other"))]
    table = build_table(collect_runs(runs_root(), ids), by=["student.arch"])
    assert [(row.values, row.n) for row in table.rows] == [(["wrn_16_1"], 3)]
    assert table.rows[0].mean == pytest.approx((85 + 80 + 50) / 3)
    result = kdtui("table", *ids, "--by", "loss.amd.wieght")
    assert result.exit_code == 2 and "Did you mean 'loss.amd.weight'" in result.flat
    result = kdtui("table", "--study", "nope")
    assert result.exit_code == 2 and "No run of study 'nope'" in result.flat


def test_default_keys_drop_what_follows_from_a_point_key(tmp_path):
    for preset, arch, best in (("kd_vgg8", "vgg8", 80.0), ("kd_resnet20", "resnet20", 81.0),
                               ("kd_vgg8", "vgg8", 82.0)):
        run = create_run(runs_root(), "t")
        run.write_config({"preset": preset, "student": {"arch": arch}, "train": {"seed": 0}})
        run.write_summary(Summary(status="finished", best_test_acc=best,
                                  study={"id": "t9", "point": {"preset": preset, "train.seed": 0}}))
    table = build_table(collect_runs(runs_root(), study="t9"))
    assert table.keys == ["preset"] and [(r.values, r.n) for r in table.rows] == [(["kd_resnet20"], 1), (["kd_vgg8"], 2)]


def test_markdown_csv_and_latex_are_ready_to_paste(store, tmp_path):
    table = build_table(collect_runs(runs_root(), study="g"), title="study g")
    md = render(table, "md").splitlines()
    assert md[2] == "| loss.amd.weight | n | best acc % | teacher % | paper % | Δ |"
    assert md[3] == "| --- | ---: | ---: | ---: | ---: | ---: |"
    assert md[5] == "| 5000 | 3 | 86.00 ± 1.00 | 90.67 | 86.30 | -0.30 |"
    assert md[6] == "| 9000 | 1 | 70.00 | - | - | - |"
    csv_lines = render(table, "csv").splitlines()
    assert csv_lines[0] == ("loss.amd.weight,n,best_acc_mean,best_acc_std,teacher_acc_mean,reported,"
                            "delta,reported_teacher,source")
    assert csv_lines[2] == "5000,3,86.0,1.0,90.6667,86.3,-0.3,,Fig. 8a"
    assert csv_lines[3] == "9000,1,70.0,,,,,,"
    latex = render(table, "latex")
    assert r"\begin{tabular}{lrrrrr}" in latex and r"\toprule" in latex
    assert r"loss.amd.weight & n & best acc \% & teacher \% & paper \% & $\Delta$ \\" in latex
    assert r"5000 & 3 & $86.00 \pm 1.00$ & 90.67 & 86.30 & $-0.30$ \\" in latex
    out = tmp_path / "g.tex"
    result = kdtui("table", "--study", "g", "--format", "latex", "--out", str(out))
    assert result.exit_code == 0 and out.read_text() == latex
    assert kdtui("table", "--format", "html").exit_code == 2


def test_scatter_of_the_final_am_loss_and_its_correlation(store):
    xs, ys = [3.0, 2.0, 1.0, 5.0, 3.0], [85.0, 86.0, 87.0, 80.0, 84.0]
    mx, my = sum(xs) / 5, sum(ys) / 5
    expected = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / math.sqrt(
        sum((x - mx) ** 2 for x in xs) * sum((y - my) ** 2 for y in ys))
    assert pearson(xs, ys) == pytest.approx(expected) and pearson([1.0], [2.0]) is None
    result = kdtui("table", "--study", "g", "--scatter", "A+P+N")
    assert result.exit_code == 0, result.output
    assert f"Pearson r between final A+P+N and best test accuracy: {expected:+.3f} over 5 runs" in result.flat
    assert "left out:" in result.flat and "(stopped)" in result.flat and "no A, P, N" in result.flat
    csv_out = kdtui("table", "--study", "g", "--scatter", "A+P+N", "--format", "csv").output.splitlines()
    assert csv_out[0] == "run,final_A+P+N,best_acc" and len(csv_out) == 6
    assert kdtui("table", "--study", "g", "--scatter", "A++N").exit_code == 2
