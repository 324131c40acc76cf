from pathlib import Path

import pytest
import yaml

from kdtui.config import load_config
from kdtui.errors import ConfigError
from kdtui.presets import list_presets, presets_dir

BASE = {"student": {"arch": "wrn_16_1"}, "loss": {"ce": {"weight": 1.0}}}


def config_from(tmp_path: Path, data, *overrides):
    path = tmp_path / "p.yaml"
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return load_config(path, overrides)


def merged(**sections):
    data = {k: dict(v) if isinstance(v, dict) else v for k, v in BASE.items()}
    data.update(sections)
    return data


def test_defaults_and_preset_name(tmp_path):
    cfg = config_from(tmp_path, BASE)
    assert cfg.preset == "p" and cfg.data.dataset == "shapes" and cfg.train.optimizer == "sgd"
    assert list(cfg.active_losses) == ["ce"]


def test_resolved_config_round_trips(tmp_path):
    cfg = config_from(tmp_path, merged(teacher={"checkpoint": "auto", "preset": "t"},
                                       loss={"ce": 0.1, "kd": {"weight": 0.9}, "amd": {"local": True}}))
    again = load_config(data=yaml.safe_load(yaml.safe_dump(cfg.to_dict())))
    assert again.to_dict() == cfg.to_dict()
    assert cfg.loss["amd"].weight == 5000 and cfg.loss["amd"].local is True


@pytest.mark.parametrize("data,pattern", [
    (merged(trian={"epochs": 1}), r"Unknown key 'trian'\. Did you mean 'train'"),
    (merged(train={"epoch": 1}), r"Unknown key train\.epoch\. Did you mean train\.epochs\?"),
    (merged(train={"epochs": "ten"}), r"train\.epochs: got 'ten', expected a whole number"),
    (merged(train={"epochs": 0}), r"train\.epochs: got 0, expected a value greater than 0"),
    (merged(train={"batch_size": 0}), r"train\.batch_size: got 0"),
    (merged(train={"lr": -0.1}), r"train\.lr: got -0\.1, expected a value greater than 0"),
    (merged(train={"milestones": [80, 40]}), r"train\.milestones: got \[80, 40\], expected strictly increasing"),
    (merged(train={"milestones": 40}), r"train\.milestones: got 40, expected a list"),
    (merged(train={"nesterov": "yes"}), r"train\.nesterov: got 'yes', expected true or false"),
    (merged(train={"optimizer": "adamw"}), r"Unknown optimizer 'adamw'\. Did you mean 'adam'\?.*sgd"),
    (merged(train={"schedule": "cosin"}), r"Unknown schedule 'cosin'\. Did you mean 'cosine'"),
    (merged(train={"device": "gpu"}), r"train\.device: got 'gpu'"),
    (merged(student={"arch": "wrn_16_11x"}), r"student\.arch: Unknown architecture"),
    (merged(data={"dataset": "cifar100x"}), r"Unknown dataset 'cifar100x'.*shapes"),
    (merged(loss={"ce": {"weight": -1}}), r"loss\.ce\.weight: got -1\.0, expected a value at least 0"),
    (merged(loss={"ce": {"weight": 0}}), r"every loss weight is zero"),
    (merged(loss={"kdd": {"weight": 1}}), r"Unknown loss 'kdd'\. Did you mean 'kd'"),
    (merged(loss={"kd": {"weight": 1}}), r"kd needs a teacher"),
    (merged(loss={"kd": {"weight": 1, "temperature": 0}}), r"loss\.kd\.temperature: got 0\.0"),
    (merged(loss={"amd": {"margin": 7}}), r"loss\.amd\.margin: got 7\.0"),
    (merged(teacher={"checkpoint": "auto"}), r"teacher\.preset"),
    ({"loss": {"ce": 1}}, r"Missing section student"),
    ("- a\n- b\n", r"must hold a mapping"),
    ("train: {epochs: 3\nloss: x\n", r"not valid YAML at line \d+, column \d+"),
])
def test_bad_presets_name_the_problem(tmp_path, data, pattern):
    with pytest.raises(ConfigError, match=pattern):
        config_from(tmp_path, data)


def test_set_overrides_are_typed(tmp_path):
    cfg = config_from(tmp_path, BASE, "train.milestones=[40,80]", "train.lr=0.05",
                      "train.weight_decay=1e-4", "loss.kd.weight=0.5", "teacher.preset=x",
                      "train.epochs=100")
    assert cfg.train.milestones == [40, 80] and cfg.train.lr == 0.05
    assert cfg.train.weight_decay == 1e-4 and cfg.loss["kd"].weight == 0.5


@pytest.mark.parametrize("override,pattern", [
    ("train.epochz=3", r"Unknown key train\.epochz\. Did you mean train\.epochs"),
    ("trainn.epochs=3", r"Unknown key 'trainn'"),
    ("train.epochs", r"expected KEY=VALUE"),
    ("train.milestones=[40,", r"cannot parse the value"),
    ("train.epochs.x=3", r"train\.epochs: got \{'x': 3\}, expected a whole number"),
    ("train=3", r"train: got 3, expected a mapping"),
])
def test_bad_overrides(tmp_path, override, pattern):
    with pytest.raises(ConfigError, match=pattern):
        config_from(tmp_path, BASE, override)


def test_missing_and_directory_preset(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="is a folder"):
        load_config(tmp_path)


def test_every_shipped_preset_validates():
    presets = list_presets()
    assert {"quickstart", "quickstart_teacher", "cifar10_teacher_wrn16_3", "cifar10_kd",
            "cifar10_amd", "cifar10_amd_gl", "cifar10_amd_quick"} <= {p.name for p in presets}
    for preset in presets:
        cfg = load_config(preset.path)
        assert preset.description, preset.name
        if cfg.teacher is not None and cfg.teacher.checkpoint == "auto":
            assert (presets_dir() / f"{cfg.teacher.preset}.yaml").exists()
        elif cfg.teacher is not None:  # the ImageNet presets: torchvision's pretrained weights
            assert cfg.teacher.checkpoint.startswith("torchvision:"), preset.name


def test_paper_recipe_in_amd_preset():
    cfg = load_config(presets_dir() / "cifar10_amd.yaml")
    amd, kd = cfg.loss["amd"], cfg.loss["kd"]
    assert (cfg.loss["ce"].weight, kd.weight, kd.temperature) == (0.1, 0.9, 4.0)
    assert (amd.weight, amd.margin, amd.scale, amd.local) == (5000, 1.35, 64, False)
    assert (cfg.train.epochs, cfg.train.batch_size, cfg.train.lr, cfg.train.weight_decay) == (200, 128, 0.1, 1e-4)
    assert cfg.train.milestones == [40, 80, 120, 160] and cfg.train.lr_decay == 0.2
    assert load_config(presets_dir() / "cifar10_amd_gl.yaml").loss["amd"].local is True


def test_set_reaches_into_the_loss_shorthand(tmp_path):
    cfg = config_from(tmp_path, merged(loss={"ce": 0.5, "kd": 0.9}, teacher={"preset": "t"}),
                      "loss.ce.weight=0.2", "loss.kd.temperature=2")
    assert cfg.loss["ce"].weight == 0.2 and cfg.loss["kd"].weight == 0.9
    assert cfg.loss["kd"].temperature == 2.0


def test_load_config_does_not_mutate_its_input():
    data = {"student": {"arch": "wrn_16_1"}, "loss": {"ce": 1.0}}
    load_config(data=data, overrides=["train.epochs=3"])
    assert data == {"student": {"arch": "wrn_16_1"}, "loss": {"ce": 1.0}}
