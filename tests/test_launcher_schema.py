"""The launcher's form schema and preset files without an app: every loss's options, how typed
values compare with the preset's, which field a validator message belongs to, saved presets."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from kdtui.config import load_config
from kdtui.errors import KdtuiError
from kdtui.losses import LOSSES
from kdtui.tui.launcher.presets_io import preset_mapping, preset_reference, write_preset
from kdtui.tui.launcher.schema import (UNPARSABLE, FormSchema, error_key, is_optional, is_text, load_form_schema,
                                       lookup, parse_text, same_value, teacher_arch_of)

RAW = {"data": {"dataset": "shapes"}, "student": {"arch": "wrn_10_1"},
       "loss": {"ce": {"weight": 1.0}, "kd": {"weight": 0.5}}, "train": {"epochs": 2}}


@pytest.fixture(scope="module")
def schema() -> FormSchema:
    return load_form_schema()  # imports PyTorch (the registries): once for the module


def all_keys(schema: FormSchema) -> list[str]:
    specs = [*schema.data, *schema.data_more, *schema.teacher.values(), schema.student, *schema.train,
             *schema.train_more, *(field for loss in schema.losses for field in loss.fields)]
    return [spec.key for spec in specs] + ["loss"]


def cli_message(overrides: list[str]) -> str:
    with pytest.raises(KdtuiError) as caught:
        load_config(data=RAW, overrides=overrides)
    return str(caught.value)


def test_schema_lists_every_loss_with_all_its_options(schema: FormSchema) -> None:
    assert sorted(loss.name for loss in schema.losses) == sorted(LOSSES.names())
    for loss in schema.losses:
        options = LOSSES.get(loss.name).Options
        assert {f.key for f in loss.fields} == {f"loss.{loss.name}.{f.name}" for f in dataclasses.fields(options)}
        assert loss.fields[0].name == "weight"
        assert loss.defaults == dataclasses.asdict(options())
    # Losses that work alone come first, then the distillation terms.
    needs = [loss.needs_teacher for loss in schema.losses]
    assert needs == sorted(needs) and not needs[0]


def test_schema_fields_and_editor_hints(schema: FormSchema) -> None:
    keys = all_keys(schema)
    assert len(keys) == len(set(keys))
    assert [spec.key for spec in schema.data][:2] == ["data.dataset", "data.root"]
    assert "shapes" in (schema.data[0].choices or ())
    assert schema.student.key == "student.arch" and "wrn_16_1" in schema.student.suggestions
    amd = next(loss for loss in schema.losses if loss.name == "amd")
    terms = next(field for field in amd.fields if field.name == "terms")
    assert terms.item_choices and terms.choices is None  # a list of choices: one checkbox each
    assert is_text(schema.teacher["preset"].hint) and is_optional(schema.teacher["arch"].hint)


def test_same_value_compares_as_the_validator_reads() -> None:
    assert same_value(parse_text("0.05"), 0.05)
    assert same_value(parse_text("1e-4"), 1e-4)         # YAML reads 1e-4 as a string; the validator as a number
    assert not same_value(parse_text("abc"), 1e-4)
    assert not same_value(1, True) and not same_value(True, 1)
    assert same_value(parse_text("[P, A]"), ["A", "P"], unordered=True)
    assert not same_value(parse_text("[P, A]"), ["A", "P"])
    assert parse_text("[1") is UNPARSABLE and not same_value(UNPARSABLE, None)
    assert parse_text("  ") is None


def test_error_key_maps_a_cli_message_to_its_field(schema: FormSchema) -> None:
    keys = all_keys(schema)
    for overrides, key in ((["train.lr=0"], "train.lr"), (["loss.kd.temperature=0"], "loss.kd.temperature"),
                           (["train.lr=[1"], "train.lr"), (["loss.ce.weight=0", "loss.kd.weight=0"], "loss"),
                           (["teacher.arch=nope"], "teacher.arch")):
        assert error_key(cli_message(overrides), overrides, keys) == key, overrides
    assert error_key("Unknown key train.nope. Valid keys of train: …", [], keys) is None


def test_lookup_and_teacher_arch() -> None:
    assert lookup(RAW, "loss.kd.weight") == 0.5
    assert lookup(RAW, "loss.at.weight") is None and lookup(RAW, "data.dataset.x") is None
    assert teacher_arch_of("auto", "tiny_teacher", "", "resnet8", []) == "resnet8"  # given: used as is
    assert teacher_arch_of("none", "", "", "", []) is None


def test_teacher_arch_of_a_teacher_preset(tiny_presets: Path) -> None:
    assert teacher_arch_of("auto", "tiny_teacher", "", "", []) == "wrn_10_1"
    assert teacher_arch_of("auto", "no_such_preset", "", "", []) is None


def test_saved_preset_is_the_source_with_the_overrides(tiny_presets: Path) -> None:
    overrides = ["train.lr=0.02", "loss.kd.temperature=2"]
    mapping = preset_mapping(tiny_presets / "tiny_student.yaml", overrides, "mine")
    assert list(mapping)[0] == "preset" and mapping["preset"] == "mine"
    assert mapping["train"]["lr"] == 0.02 and mapping["loss"]["kd"] == {"weight": 0.9, "temperature": 2}
    target = tiny_presets / "mine.yaml"
    write_preset(tiny_presets / "tiny_student.yaml", overrides, target)
    assert yaml.safe_load(target.read_text()) == mapping
    assert load_config(target).to_dict() == {**load_config(tiny_presets / "tiny_student.yaml", overrides).to_dict(),
                                             "preset": "mine"}
    assert preset_reference(target) == "mine"
