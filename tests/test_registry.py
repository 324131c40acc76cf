"""Registries carry metadata (datasets: classes, image size, group, crop padding), read by
the config's help and validation and by the preset groups; config options say whether they
change the trained network, and teacher matching ignores those that do not."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest
import torch

from kdtui.config import DataConfig, TrainConfig, load_config, model_independent_keys
from kdtui.data import DATASETS, DatasetInfo, build_data, dataset_groups, dataset_info
from kdtui.engine.optim import OPTIMIZERS, SCHEDULES
from kdtui.errors import ConfigError
from kdtui.presets import GROUPS, group_of
from kdtui.registry import Registry
from kdtui.store import create_run

STUDENT = {"student": {"arch": "wrn_16_1"}}


def test_registry_entries_carry_metadata():
    plain = Registry("thing")

    @plain.register("a", colour="red")
    def a() -> str:
        return "A"

    plain.register("b")(lambda: "B")
    assert plain.get("a")() == "A" and plain.info("a").colour == "red" and plain.info("b").name == "b"
    assert [info.name for info in plain.infos()] == ["a", "b"]
    with pytest.raises(ConfigError, match=r"Unknown thing 'c'.*Valid: a, b"):
        plain.info("c")
    with pytest.raises(ValueError, match="registered twice"):
        plain.register("a")(a)
    with pytest.raises(TypeError):
        Registry("dataset", info_type=DatasetInfo).register("x", num_classes=3)  # fields missing


def test_dataset_metadata():
    assert dataset_info("cifar100").num_classes == 100 and DATASETS.info("cifar100").image_size == 32
    expected = {  # name: classes, image size, group, crop padding
        "shapes": (10, 32, "quickstart", 4), "cifar10": (10, 32, "cifar10", 4),
        "cifar100": (100, 32, "cifar100", 4), "cinic10": (10, 32, "cinic10", 4),
        "tiny_imagenet": (200, 64, "tiny_imagenet", 2), "imagenet": (1000, 224, "imagenet", None),
        "imagefolder": (None, None, "other", 4),
    }
    assert DATASETS.names() == list(expected)
    for name, values in expected.items():
        info = dataset_info(name)
        assert (info.num_classes, info.image_size, info.group, info.crop_padding) == values, name
        assert info.name == name and info.description and "\n" not in info.description
    with pytest.raises(ConfigError, match=r"Unknown dataset 'cifar1000'\. Did you mean"):
        dataset_info("cifar1000")


def test_shapes_bundle_agrees_with_its_metadata():
    bundle = build_data(DataConfig(dataset="shapes", train_size=20, test_size=10), seed=0)
    info = dataset_info("shapes")
    assert (bundle.num_classes, bundle.image_size, bundle.name) == (info.num_classes, info.image_size, "shapes")


def test_preset_groups_come_from_the_dataset_registry():
    assert GROUPS == ("quickstart", "cifar10", "cifar100", "cinic10", "tiny_imagenet", "imagenet", "other")
    assert dataset_groups() == ["quickstart", "cifar10", "cifar100", "cinic10", "tiny_imagenet", "imagenet",
                                "other"]
    for info in DATASETS.infos():
        assert group_of(f"{info.name}_kd") == info.group == group_of(info.name)
    assert group_of("quickstart_teacher") == "quickstart" and group_of("imagefolderx") == "other"


def test_help_texts_list_the_registries_names():
    helps = {f.name: f.metadata["help"] for f in dataclasses.fields(DataConfig)}
    assert all(name in helps["dataset"] for name in DATASETS.names())
    assert "tiny_imagenet 2" in helps["crop_padding"] and "imagenet uses random-resized crops" in helps["crop_padding"]
    helps = {f.name: f.metadata["help"] for f in dataclasses.fields(TrainConfig)}
    assert all(name in helps["optimizer"] for name in OPTIMIZERS.names())
    assert all(name in helps["schedule"] for name in SCHEDULES.names())


def test_registries_config_and_presets_import_without_torch():
    code = ("import sys\nimport kdtui.config, kdtui.data, kdtui.presets, kdtui.engine.optim, kdtui.overrides\n"
            "kdtui.data.dataset_info('imagenet'); kdtui.config.model_independent_keys()\n"
            "assert 'torch' not in sys.modules, sorted(m for m in sys.modules if m.startswith('torch'))\n")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


@pytest.mark.parametrize("data,pattern", [
    ({"dataset": "imagenet", "crop_padding": 4}, r"data\.crop_padding: imagenet trains on random-resized crops"),
    ({"dataset": "cifar10", "crop_padding": -1}, r"data\.crop_padding: got -1, expected a value at least 0"),
    ({"dataset": "cifar10", "crop_padding": 2.5}, r"data\.crop_padding: got 2\.5, expected a whole number"),
])
def test_bad_crop_padding(data, pattern):
    with pytest.raises(ConfigError, match=pattern):
        load_config(data={**STUDENT, "data": data})


def test_crop_padding_default_and_override():
    assert load_config(data=STUDENT).data.crop_padding is None
    assert load_config(data=STUDENT, overrides=["data.crop_padding=2"]).data.crop_padding == 2


def test_model_independent_keys_are_the_options_marked_so():
    assert model_independent_keys() == {
        "preset", "description", "data.root", "data.download", "data.num_workers", "data.memory_budget_gb",
        "train.device", "train.amp", "train.log_every", "train.eval_batch_size", "train.nan_skip_limit",
        "train.deterministic", "train.compile"}
    resolved = load_config(data=STUDENT).to_dict()
    for key in model_independent_keys():
        section, _, name = key.rpartition(".")
        assert name in (resolved[section] if section else resolved), key


def finished_run(root, config: dict, name: str = "teach"):
    run = create_run(root, name)
    run.write_config(config)
    run.write_summary({"status": "finished"})
    run.checkpoints.mkdir(parents=True, exist_ok=True)
    torch.save({}, run.checkpoints / "best.pt")
    return run


def test_auto_teacher_matching_ignores_exactly_the_model_independent_settings(tmp_path):
    from kdtui.engine.teacher import newest_finished_run

    expected = load_config(data={**STUDENT, "preset": "teach"}).to_dict()
    older = {key: dict(value) if isinstance(value, dict) else value for key, value in expected.items()}
    del older["data"]["crop_padding"]  # written before the option existed: its default
    older["train"].update(device="cuda:1", amp=False, log_every=5)
    older["data"].update(root=str(tmp_path / "elsewhere"), num_workers=8)
    run = finished_run(tmp_path / "a", older)
    assert newest_finished_run(tmp_path / "a", expected) == run
    for key, value in (("train.lr", 0.05), ("data.crop_padding", 2), ("data.seed", 1)):
        section, name = key.split(".")
        other = {**expected, section: {**expected[section], name: value}}
        finished_run(tmp_path / key, other)
        assert newest_finished_run(tmp_path / key, expected) is None, key
