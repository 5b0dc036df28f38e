"""Models: local weights, layers, freezing (helpers.models)."""

import itertools

import pytest
import torch

from helpers import models, train

ARCHS = [("resnet10t", {}), ("convnext_atto", {}),
         ("vit_tiny_patch16_224", {"patch_size": 8, "depth": 2}), ("smallcnn", {"width": 8})]


def _make(name, kw, n=10):
    torch.manual_seed(0)
    return models.create(name, n, img_size=32, mean=(0.5,) * 3, std=(0.5,) * 3, **kw)


def test_saved_timm_state_dict_loads_via_weights_path(tmp_path):
    model = _make("resnet10t", {}).eval()
    path = tmp_path / "resnet10t.pth"
    torch.save(model.state_dict(), path)
    again = models.create("resnet10t", 10, weights=path, img_size=32).eval()
    x = torch.randn(4, 3, 32, 32)
    assert torch.equal(model(x), again(x))
    # a different head size keeps the backbone and re-initializes the classifier
    other = models.create("resnet10t", 3, weights=path).eval()
    assert torch.equal(other.conv1[0].weight, model.conv1[0].weight)
    assert other.fc.out_features == 3


@pytest.mark.parametrize("name", ["pvt_v2_b0", "vit_tiny_patch16_224", "resnet10t"])
def test_img_size_is_passed_only_where_the_constructor_takes_it(name):
    """The GPU check found pvt_v2 refusing ``img_size``; every family still runs at 64 px and
    records the size it was asked for."""
    model = models.create(name, 3, img_size=64).eval()
    assert model(torch.zeros(1, 3, 64, 64)).shape == (1, 3)
    assert model.pretrained_cfg["input_size"] == (3, 64, 64)


def test_weights_that_do_not_fit_are_refused(tmp_path):
    path = tmp_path / "w.pth"
    torch.save(_make("resnet10t", {}).state_dict(), path)
    with pytest.raises(ValueError, match="do not fit"):
        models.create("resnet18", 10, weights=path)
    with pytest.raises(FileNotFoundError, match="weights"):
        models.create("resnet18", 10, weights=tmp_path / "missing.pth")


def test_unknown_architecture_suggests():
    with pytest.raises(ValueError, match="did you mean 'resnet18'"):
        models.create("resnet-18", 10)


@pytest.mark.parametrize("name,kw", ARCHS)
def test_freeze_first_k_counts_down_to_the_head(name, kw):
    model = _make(name, kw)
    n_layers = len(models.layer_names(model))
    counts = [models.freeze_first(model, k) for k in range(n_layers + 1)]
    assert counts[0] == sum(p.numel() for p in model.parameters())
    assert all(a >= b for a, b in itertools.pairwise(counts))
    head = sum(p.numel() for p in model.get_classifier().parameters())
    assert head <= counts[-1] < counts[0] and counts[-1] < 2 * head + 1000
    with pytest.raises(ValueError, match="k must be in"):
        models.freeze_first(model, n_layers + 1)


@pytest.mark.parametrize("name,kw", ARCHS)
def test_frozen_parameters_bit_identical_after_training_the_rest(name, kw, small_set):
    model = _make(name, kw)
    k = len(models.layer_names(model)) // 2 + 1
    models.freeze_first(model, k)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    train.fit(model, small_set, epochs=1, lr=1e-2, batch_size=32, progress=False)
    for n, p in model.named_parameters():
        if p.requires_grad:
            assert not torch.equal(before[n], p), f"{n} should have trained"
        else:
            assert torch.equal(before[n], p), f"{n} should be frozen"


def test_small_cnn_width_scales_parameters():
    small = models.create("smallcnn", 10, width=8)
    big = models.create("smallcnn", 10, width=32)
    n = lambda m: sum(p.numel() for p in m.parameters())
    assert n(big) > 10 * n(small)
    assert models.layer_names(big) == [f"blocks.{i}" for i in range(5)]


@pytest.mark.parametrize("name,kw", ARCHS)
def test_a_split_model_computes_what_the_whole_model_does(name, kw):
    """rest(prefix(x)) == model(x) at every k of the families with a split; the others (and
    k = 0) have none, and frozen_layers reads back freeze_first's k."""
    model = _make(name, kw).eval()
    x = torch.randn(4, 3, 32, 32)
    n_layers = len(models.layer_names(model))
    assert models.split(model, 0) is None
    with torch.no_grad():
        whole = model(x)
        for k in range(1, n_layers + 1):
            models.freeze_first(model, k)
            assert models.frozen_layers(model) == k
            found = models.split(model, k)
            if name == "convnext_atto":
                assert found is None
                continue
            prefix, rest = found
            torch.testing.assert_close(rest(prefix(model, x)), whole, rtol=1e-5, atol=1e-5)
    models.freeze_first(model, 0)
    assert models.frozen_layers(model) == 0


@pytest.mark.parametrize("size,kernel,stride,padding,groups", [
    (1, 3, 1, 1, 1), (1, 3, 2, 1, 1), (2, 3, 2, 1, 1), (2, 7, 1, 3, 4), (1, 7, 1, 3, 4),
    (3, 5, 1, 2, 1), (2, 3, 1, 1, 1), (4, 3, 1, 1, 1), (1, 1, 1, 0, 1), (2, 1, 2, 0, 1)])
def test_cropped_convolution_computes_what_the_full_kernel_does(size, kernel, stride, padding,
                                                               groups):
    """Output and gradients (input, weight, bias) equal F.conv2d with every kernel tap, and the
    taps left out are exactly those that meet the zero padding at every output position."""
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(8, 12, kernel, stride, padding, groups=groups)
    x = torch.randn(5, 8, size, size, requires_grad=True)
    cropped = models.crop_dead_taps(torch.nn.Sequential(conv))[0]
    assert type(cropped) is models.CroppedConv2d
    out = cropped(x)
    ref = torch.nn.functional.conv2d(x, conv.weight, conv.bias, stride, padding, 1, groups)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    grads = torch.autograd.grad(out.square().sum(), [x, conv.weight, conv.bias])
    expected = torch.autograd.grad(ref.square().sum(), [x, conv.weight, conv.bias])
    for got, want in zip(grads, expected):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    out_size = ref.shape[-1]
    live = [k for k in range(kernel)
            if any(0 <= i * stride - padding + k < size for i in range(out_size))]
    found = models._live_taps(size, kernel, stride, padding, 1)
    assert (found is None) == (len(live) == kernel)
    if found is not None:
        assert list(range(found[0], found[0] + found[1])) == live


def test_models_are_built_with_cropped_convolutions_and_keep_their_state_dict_keys():
    import timm

    model = _make("resnet10t", {})
    plain = timm.create_model("resnet10t", num_classes=10)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(type(m) is models.CroppedConv2d for m in convs)
    assert list(model.state_dict()) == list(plain.state_dict())
