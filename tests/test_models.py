import pytest
import torch

from kdtui.errors import ConfigError
from kdtui.models import MODELS, ModelOutput, build_model, count_parameters

# Parameter counts for 10 classes, as in the KD literature's WRN definition.
PAPER_COUNTS = {"wrn_16_1": 175_066, "wrn_16_3": 1_549_530, "wrn_28_1": 369_498, "wrn_40_2": 2_243_546}


@pytest.mark.parametrize("name,count", PAPER_COUNTS.items())
def test_wrn_parameter_counts(name, count):
    assert count_parameters(build_model(name, num_classes=10)) == count


@pytest.mark.parametrize("size", [32, 64])
def test_wrn_output_and_features(size):
    net = build_model("wrn_16_2", num_classes=7).eval()
    out = net(torch.randn(2, 3, size, size))
    assert isinstance(out, ModelOutput)
    assert out.logits.shape == (2, 7)
    assert [tuple(f.shape) for f in out.features] == [
        (2, 32, size, size), (2, 64, size // 2, size // 2), (2, 128, size // 4, size // 4)]


def test_any_valid_depth_and_width_is_registered():
    assert "wrn_22_4" in MODELS
    assert count_parameters(build_model("wrn_10_1", 10)) < count_parameters(build_model("wrn_16_1", 10))


@pytest.mark.parametrize("name", ["wrn_15_1", "wrn_4_1", "wrn_16_0"])
def test_invalid_wrn_is_a_clear_error(name):
    with pytest.raises(ConfigError, match="6n\\+4"):
        build_model(name, 10)


def test_unknown_architecture_lists_valid_ones():
    with pytest.raises(ConfigError, match="Did you mean 'wrn_16_1'.*Valid:"):
        build_model("wrn16_1", 10)


def test_features_carry_gradient_to_input():
    net = build_model("wrn_10_1", 10)
    images = torch.randn(2, 3, 32, 32, requires_grad=True)
    net(images).features[-1].pow(2).sum().backward()
    assert images.grad is not None and images.grad.abs().sum() > 0
