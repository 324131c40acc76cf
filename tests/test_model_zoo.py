"""The model zoo: every registered network's output contract, exact parameter counts
(checked against the papers' figures) and the feature maps distillation pairs up."""

import functools
import re

import pytest
import torch
from typer.testing import CliRunner

from kdtui.cli import app
from kdtui.models import MODELS, ModelOutput, build_model, count_parameters

IMAGENET = ("resnet18", "resnet34", "resnet50")
WRN_EXAMPLES = tuple(name for name in MODELS.names() if name.startswith("wrn_"))

# Exact counts for (10, 100) classes: any change to a definition shows up here.
EXACT_COUNTS = {
    "resnet8": (78_042, 83_892),
    "resnet14": (175_258, 181_108),
    "resnet20": (272_474, 278_324),
    "resnet26": (369_690, 375_540),
    "resnet32": (466_906, 472_756),
    "resnet44": (661_338, 667_188),
    "resnet56": (855_770, 861_620),
    "resnet110": (1_730_714, 1_736_564),
    "resnet8x4": (1_210_410, 1_233_540),
    "resnet32x4": (7_410_730, 7_433_860),
    "vgg8": (3_918_858, 3_965_028),
    "vgg11": (9_231_114, 9_277_284),
    "vgg13": (9_416_010, 9_462_180),
    "vgg16": (14_728_266, 14_774_436),
    "vgg19": (20_040_522, 20_086_692),
    "mobilenetv2": (697_546, 812_836),
    "shufflenetv1": (862_768, 949_258),
    "shufflenetv2": (1_263_278, 1_355_528),
    "resnet18": (11_181_642, 11_227_812),
    "resnet34": (21_289_802, 21_335_972),
    "resnet50": (23_528_522, 23_712_932),
}

# (name, classes) -> the figure a paper gives: the AMD paper (10 classes), RepDistiller /
# CRD (100 classes), torchvision (1000 classes).
PAPER_FIGURES = {
    ("resnet20", 10): 0.27e6, ("resnet26", 10): 0.37e6, ("vgg8", 10): 3.9e6, ("vgg13", 10): 9.4e6,
    ("vgg8", 100): 3.96e6, ("vgg13", 100): 9.46e6, ("resnet8x4", 100): 1.23e6,
    ("resnet32x4", 100): 7.43e6, ("mobilenetv2", 100): 0.81e6, ("shufflenetv1", 100): 0.95e6,
    ("shufflenetv2", 100): 1.36e6, ("resnet18", 1000): 11.69e6, ("resnet34", 1000): 21.80e6,
    ("resnet50", 1000): 25.56e6,
}

# Table 9's teacher/student pairs: AMD and AT compare their maps layer by layer.
TABLE9_PAIRS = [("wrn_28_1", "vgg8"), ("wrn_16_8", "vgg8"), ("vgg13", "resnet20"), ("mobilenetv2", "resnet26")]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One intra-op thread: the forwards are small, and two threads on two shared cores spin."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@functools.lru_cache(maxsize=None)
def meta_count(name: str, classes: int) -> int:
    with torch.device("meta"):
        return count_parameters(build_model(name, classes))


def expected_features(name: str, s: int) -> list[tuple[int, int, int]]:
    """C×H×W of each feature map for an s×s input."""
    if name in IMAGENET:
        e = 4 if name == "resnet50" else 1
        return [(64 * e, s // 4, s // 4), (128 * e, s // 8, s // 8), (256 * e, s // 16, s // 16),
                (512 * e, s // 32, s // 32)]
    if name.startswith("wrn_"):
        k = int(name.split("_")[2])
        return [(16 * k, s, s), (32 * k, s // 2, s // 2), (64 * k, s // 4, s // 4)]
    if name.startswith("resnet"):
        c = 64 if name.endswith("x4") else 16
        return [(c, s, s), (2 * c, s // 2, s // 2), (4 * c, s // 4, s // 4)]
    if name.startswith("vgg"):  # blocks 1, 2, 3
        return [(128, s // 2, s // 2), (256, s // 4, s // 4), (512, s // 8, s // 8)]
    if name == "mobilenetv2":  # stages 2, 3, 5 of the (t, c, n, s) table
        return [(12, s // 2, s // 2), (16, s // 4, s // 4), (48, s // 8, s // 8)]
    widths = {"shufflenetv1": (240, 480, 960), "shufflenetv2": (116, 232, 464)}[name]
    return [(c, s // 2 ** (i + 1), s // 2 ** (i + 1)) for i, c in enumerate(widths)]


def test_every_exact_name_has_recorded_counts():
    assert set(MODELS.names()) - set(WRN_EXAMPLES) == set(EXACT_COUNTS)


@pytest.mark.parametrize("name", list(EXACT_COUNTS))
def test_exact_parameter_counts(name):
    assert (meta_count(name, 10), meta_count(name, 100)) == EXACT_COUNTS[name]


@pytest.mark.parametrize("name,classes", list(PAPER_FIGURES))
def test_counts_within_two_percent_of_the_papers(name, classes):
    figure = PAPER_FIGURES[name, classes]
    assert abs(meta_count(name, classes) - figure) <= 0.02 * figure


def test_cifar_mobilenetv2_is_in_the_amd_papers_range():
    assert 0.6e6 <= meta_count("mobilenetv2", 10) <= 0.8e6


CASES = [(name, size) for name in MODELS.names() if name not in IMAGENET for size in (32, 64)]
CASES += [(name, 64) for name in IMAGENET]


@pytest.mark.parametrize("name,size", CASES)
def test_forward_logits_and_features(name, size):
    torch.manual_seed(0)
    net = build_model(name, num_classes=7)
    with torch.no_grad():
        out = net(torch.randn(2, 3, size, size))
    assert isinstance(out, ModelOutput)
    assert out.logits.shape == (2, 7) and torch.isfinite(out.logits).all()
    assert [tuple(f.shape) for f in out.features] == [(2, *s) for s in expected_features(name, size)]


# Every network's feature maps (C×H×W) for a 32×32 input, written out: RepDistiller's
# ``model(x, is_feat=True)`` maps ``feat[1:-1]`` as its feature losses zip them with a
# three-map partner (HobbitLong/RepDistiller, commit b84f547c5db6a35318d4671d7d5c4de74c822403:
# models/wrn.py and resnet.py: the three group/layer outputs, preact=False; vgg.py: f1..f4
# = blocks 1–4 after ReLU, so blocks 1–3; mobilenetv2.py: f1..f4 = blocks[1], [2], [4], [6],
# so the 16×16, 8×8, 4×4 ones; ShuffleNetv1/v2.py: the three stage outputs). ``last_map``
# is ``feat[-2]`` (SP) and ``embedding`` is ``feat[-1]`` (PKT, RKD).
WRN_32 = {k: [(16 * k, 32, 32), (32 * k, 16, 16), (64 * k, 8, 8)] for k in (1, 2, 3, 8)}
RESNET_32 = [(16, 32, 32), (32, 16, 16), (64, 8, 8)]
VGG_32 = [(128, 16, 16), (256, 8, 8), (512, 4, 4)]
FEATURES_32 = {
    **{f"resnet{d}": RESNET_32 for d in (8, 14, 20, 26, 32, 44, 56, 110)},
    "resnet8x4": [(64, 32, 32), (128, 16, 16), (256, 8, 8)],
    "resnet32x4": [(64, 32, 32), (128, 16, 16), (256, 8, 8)],
    **{f"vgg{d}": VGG_32 for d in (8, 11, 13, 16, 19)},
    "mobilenetv2": [(12, 16, 16), (16, 8, 8), (48, 4, 4)],
    "shufflenetv1": [(240, 16, 16), (480, 8, 8), (960, 4, 4)],
    "shufflenetv2": [(116, 16, 16), (232, 8, 8), (464, 4, 4)],
    "wrn_16_1": WRN_32[1], "wrn_16_2": WRN_32[2], "wrn_16_3": WRN_32[3], "wrn_16_8": WRN_32[8],
    "wrn_28_1": WRN_32[1], "wrn_40_1": WRN_32[1], "wrn_40_2": WRN_32[2],
    "resnet18": [(64, 8, 8), (128, 4, 4), (256, 2, 2), (512, 1, 1)],
    "resnet34": [(64, 8, 8), (128, 4, 4), (256, 2, 2), (512, 1, 1)],
    "resnet50": [(256, 8, 8), (512, 4, 4), (1024, 2, 2), (2048, 1, 1)],
}
# (last_map C×H×W, embedding size) for a 32×32 input where they are not features[-1] and C.
LAST_32 = {"mobilenetv2": ((160, 2, 2), 1280), "shufflenetv2": ((464, 4, 4), 1024),
           **{f"vgg{d}": ((512, 4, 4), 512) for d in (8, 11, 13, 16, 19)}}


def test_feature_table_covers_every_network():
    assert set(FEATURES_32) == set(MODELS.names())


@pytest.mark.parametrize("name", sorted(FEATURES_32))
def test_feature_maps_for_32x32_inputs(name):
    with torch.device("meta"), torch.no_grad():
        out = build_model(name, 10).eval()(torch.empty(2, 3, 32, 32))
    assert [tuple(f.shape[1:]) for f in out.features] == FEATURES_32[name]
    last, dim = LAST_32.get(name, (FEATURES_32[name][-1], FEATURES_32[name][-1][0]))
    assert tuple(out.last_map.shape[1:]) == last
    assert tuple(out.embedding.shape) == (2, dim)


def _outputs_of(net: torch.nn.Module, modules: list[torch.nn.Module], x: torch.Tensor):
    seen: dict[int, torch.Tensor] = {}
    hooks = [m.register_forward_hook(lambda m, i, o, k=k: seen.__setitem__(k, o))
             for k, m in enumerate(modules)]
    with torch.no_grad():
        out = net(x)
    for hook in hooks:
        hook.remove()
    return out, [seen[k] for k in range(len(modules))]


@pytest.mark.parametrize("size", [32, 64])
def test_vgg_features_are_blocks_1_to_3_and_last_map_block_4(size):
    """At 32×32 blocks 3 and 4 are both 512×4×4: only the tensors tell them apart."""
    torch.manual_seed(0)
    net = build_model("vgg8", 10).eval()
    # Each block's last module is its final ReLU: its output is the block's output.
    out, blocks = _outputs_of(net, [b[-1] for b in net.blocks], torch.randn(2, 3, size, size))
    assert all(torch.equal(f, b) for f, b in zip(out.features, blocks[1:4], strict=True))
    assert torch.equal(out.last_map, blocks[4])
    assert not torch.equal(out.features[-1], out.last_map)


def test_mobilenetv2_features_are_stages_2_3_5_and_last_map_stage_7():
    torch.manual_seed(0)
    net = build_model("mobilenetv2", 10).eval()
    out, stages = _outputs_of(net, [s[-1] for s in net.stages], torch.randn(2, 3, 32, 32))
    assert all(torch.equal(f, s) for f, s in zip(out.features, [stages[1], stages[2], stages[4]], strict=True))
    assert torch.equal(out.last_map, stages[6])


@pytest.mark.parametrize("name", ["resnet8", "resnet8x4", "vgg8", "mobilenetv2", "shufflenetv1",
                                  "shufflenetv2", "wrn_16_1", "resnet18"])
def test_embedding_is_what_the_classifier_sees(name):
    torch.manual_seed(0)
    net = build_model(name, 10).eval()
    linear = [m for m in net.modules() if isinstance(m, torch.nn.Linear)][-1]
    seen = []
    hook = linear.register_forward_hook(lambda m, i, o: seen.append(i[0]))
    with torch.no_grad():
        out = net(torch.randn(2, 3, 64 if name == "resnet18" else 32, 64 if name == "resnet18" else 32))
    hook.remove()
    assert torch.equal(out.embedding, seen[0]) and out.embedding.dim() == 2
    assert torch.equal(linear(out.embedding), out.logits)


@pytest.mark.parametrize("name", IMAGENET)
def test_imagenet_resnets_at_224(name):
    net = build_model(name, num_classes=1000).eval()
    with torch.no_grad():
        out = net(torch.randn(1, 3, 224, 224))
    assert out.logits.shape == (1, 1000)
    assert [tuple(f.shape) for f in out.features] == [(1, *s) for s in expected_features(name, 224)]


def test_imagenet_resnet_parameter_names_are_torchvisions():
    from torchvision.models import resnet18

    with torch.device("meta"):
        ours, theirs = build_model("resnet18", 1000), resnet18(weights=None)
    assert ours.state_dict().keys() == theirs.state_dict().keys()


@pytest.mark.parametrize("name", ["resnet8", "vgg8", "mobilenetv2", "shufflenetv1", "shufflenetv2"])
def test_features_carry_gradient_in_training_mode(name):
    net = build_model(name, 10).train()
    images = torch.randn(2, 3, 32, 32, requires_grad=True)
    out = net(images)
    (out.logits.sum() + sum(f.pow(2).mean() for f in out.features)).backward()
    assert images.grad is not None and images.grad.abs().sum() > 0


@pytest.mark.parametrize("teacher,student", TABLE9_PAIRS)
def test_table9_pairs_give_the_same_number_of_feature_maps(teacher, student):
    with torch.device("meta"), torch.no_grad():
        maps = [len(build_model(n, 10).eval()(torch.empty(1, 3, 32, 32)).features) for n in (teacher, student)]
    assert maps == [3, 3]


def test_models_command_lists_every_name_with_its_count():
    result = CliRunner().invoke(app, ["models"])
    assert result.exit_code == 0, result.output
    for name in MODELS.names():
        assert re.search(rf"\b{name}\b", result.output)
    assert "175,066" in result.output and "272,474" in result.output and "3,918,858" in result.output
    assert "16×32×32" in result.output


def test_models_command_compares_a_teacher_and_a_student():
    result = CliRunner().invoke(app, ["models", "--teacher", "wrn_16_8", "--student", "vgg8", "--classes", "100"])
    assert result.exit_code == 0, result.output
    assert "11,007,540" in result.output and "3,965,028" in result.output
    assert "2.78×" in result.output  # 11,007,540 / 3,965,028


@pytest.mark.parametrize("args", [["--teacher", "wrn_16_8"], ["--teacher", "nope", "--student", "vgg8"]])
def test_models_command_refuses_bad_pairs(args):
    result = CliRunner().invoke(app, ["models", *args])
    assert result.exit_code == 2
