"""The --set grammar: parse_override reads back exactly what render_override writes, and
load_config takes the text form and already-parsed (key, value) pairs alike."""

from __future__ import annotations

import math

import pytest

from kdtui.config import load_config
from kdtui.errors import ConfigError
from kdtui.overrides import apply_override, parse_override, render_override, render_value

TRICKY = [
    0, -3, 10**20, 3.0, -0.0, 0.05, 1e-5, 1e16, 2.5e-300, math.inf, -math.inf,
    True, False, None,
    "", "abc", "10", "-3", "3.0", "1e3", "1e-4", ".5", "+1", "0x1F", "0o17", "1_000", "12:30",
    "2001-12-14", "yes", "No", "on", "off", "y", "null", "Null", "~", "true", "TRUE", ".inf", ".nan",
    "NaN", "cuda:1", "/data/with space", "a,b", "a: b", "a=b", "=", "#x", "x #y", " lead", "trail ",
    "[1]", "{a: 1}", "it's", '"q"', "-", "- a", "?", "!tag", "&a", "*a", "%x", "@x", "`x", "|", ">",
    "line\nbreak", "tab\there", "é", "\x85", "\u2028",
    [], [40, 80], [1, "2", [3.0, None]], ["a,b", "c]", "{x}", "yes", ""], [True, "true"],
    {"a": "1", "b": [True]},
]


@pytest.mark.parametrize("value", TRICKY, ids=repr)
def test_render_then_parse_gives_the_same_key_and_value(value):
    key, parsed = parse_override(render_override("loss.kd.temperature", value))
    assert key == "loss.kd.temperature"
    assert parsed == value and type(parsed) is type(value)
    if isinstance(value, list):
        assert [type(v) for v in parsed] == [type(v) for v in value]


def test_render_writes_plain_text_where_it_can():
    assert render_override("train.milestones", [40, 80]) == "train.milestones=[40, 80]"
    assert render_override("train.device", "cuda:1") == "train.device=cuda:1"
    assert render_value(1e-4) == "0.0001" and render_value(1e-5) == "1.0e-05"
    assert render_value("10") == "'10'" and render_value(None) == "null"
    assert math.isnan(parse_override(render_override("x", math.nan))[1])


@pytest.mark.parametrize("text", ["train.epochs", "=3", "train..epochs=3", ".x=1"])
def test_parse_rejects_malformed_overrides(text):
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        parse_override(text)


def test_apply_override_takes_a_dotted_key_or_its_parts():
    raw = {"train": {"lr": 0.1}}
    apply_override(raw, "train.milestones", [40])
    apply_override(raw, ["loss", "kd", "weight"], 0.9)
    assert raw == {"train": {"lr": 0.1, "milestones": [40]}, "loss": {"kd": {"weight": 0.9}}}
    with pytest.raises(ConfigError, match="train.lr is a value, not a section"):
        apply_override(raw, "train.lr.x", 1)


def test_load_config_takes_parsed_pairs_and_text_alike():
    data = {"student": {"arch": "wrn_16_1"}}
    texts = ["train.milestones=[40, 80]", "train.lr=0.05", "data.root=", "train.device=cpu"]
    pairs = [parse_override(text) for text in texts]
    assert pairs[2] == ("data.root", None)
    assert load_config(data=data, overrides=pairs).to_dict() == \
        load_config(data=data, overrides=texts).to_dict()
    milestones = [40, 80]
    cfg = load_config(data=data, overrides=[("train.milestones", milestones), "train.epochs=100"])
    assert cfg.train.milestones == [40, 80] and cfg.train.epochs == 100
    cfg.train.milestones.append(90)
    assert milestones == [40, 80]
    with pytest.raises(ConfigError, match="Unknown key 'trian'"):
        load_config(data=data, overrides=[("trian.lr", 0.1)])
    with pytest.raises(ConfigError, match="expected a dotted key"):
        load_config(data=data, overrides=[("", 0.1)])


def test_compact_rendering_writes_whole_floats_as_integers_for_people():
    from kdtui.overrides import parse_override, render_override

    assert render_override("loss.at.weight", 1000.0, compact=True) == "loss.at.weight=1000"
    assert render_override("train.milestones", [40.0, 80.5], compact=True) == "train.milestones=[40, 80.5]"
    assert render_override("train.lr", 0.05, compact=True) == "train.lr=0.05"
    assert parse_override(render_override("loss.at.weight", 1000.0, compact=True))[1] == 1000.0
