"""Models: timm architectures (plus a width-parameterized small CNN), layers, freezing.

"A layer" is defined once per family, as the outputs of ``forward_intermediates`` (timm's
``feature_info``): CNN stages (ResNet: stem + 4 stages; ConvNeXt: 4 stages), every ViT block,
every block of :class:`SmallCNN`. Chapters 1-4 all index layers this way.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .names import did_you_mean

SMALL_CNN = "smallcnn"


class SmallCNN(nn.Module):
    """``depth`` conv blocks of equal ``width`` (3x3 conv, BN, ReLU; 2x2 max-pool every
    second block), global average pool, linear head. Chapter 4's double-descent family:
    the trainable parameter count crosses the sample count as blocks are frozen."""

    def __init__(self, num_classes: int = 10, width: int = 32, depth: int = 5, in_chans: int = 3):
        super().__init__()
        if width < 1 or depth < 1:
            raise ValueError(f"width and depth must be >= 1, got width={width}, depth={depth}")
        blocks, c = [], in_chans
        for i in range(depth):
            layers = [nn.Conv2d(c, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
                      nn.ReLU(inplace=True)]
            if i % 2 == 1:
                layers.append(nn.MaxPool2d(2))
            blocks.append(nn.Sequential(*layers))
            c = width
        self.blocks = nn.Sequential(*blocks)
        self.num_features = width
        self.fc = nn.Linear(width, num_classes)
        self.feature_info = [{"num_chs": width, "module": f"blocks.{i}"} for i in range(depth)]
        self.pretrained_cfg = {"architecture": SMALL_CNN, "input_size": (in_chans, 32, 32),
                               "mean": (0.5,) * in_chans, "std": (0.5,) * in_chans}

    def forward_intermediates(self, x, indices=None, intermediates_only=False, **_):
        take = set(range(len(self.blocks))) if indices is None else set(indices)
        intermediates = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in take:
                intermediates.append(x)
        return intermediates if intermediates_only else (x, intermediates)

    def forward_head(self, x, pre_logits: bool = False):
        x = x.mean(dim=(2, 3))
        return x if pre_logits else self.fc(x)

    def reset_classifier(self, num_classes: int):
        self.fc = nn.Linear(self.num_features, num_classes)

    def get_classifier(self):
        return self.fc

    def forward(self, x):
        return self.forward_head(self.forward_intermediates(x, indices=[])[0])


def _live_taps(size: int, kernel: int, stride: int, padding: int, dilation: int):
    """(first, count, padding) of the kernel taps of a zero-padded convolution along one axis
    that meet the input at some output position; None when every tap does (or dilated)."""
    out = (size + 2 * padding - kernel) // stride + 1
    if dilation != 1 or out < 1:
        return None
    first = max(0, padding - (out - 1) * stride)
    count = min(kernel - 1, size - 1 + padding) - first + 1
    pad = padding - first
    if count == kernel or (size + 2 * pad - count) // stride + 1 != out:
        return None
    return first, count, pad


class _LiveTaps(torch.autograd.Function):
    """``weight[:, :, r0:r0 + rn, c0:c0 + cn]`` as a contiguous tensor, its gradient written
    into one zero tensor of the kernel's shape (two slices' backward fill and copy twice)."""

    @staticmethod
    def forward(ctx, weight, r0: int, rn: int, c0: int, cn: int):
        ctx.shape, ctx.box = weight.shape, (r0, rn, c0, cn)
        return weight[:, :, r0:r0 + rn, c0:c0 + cn].contiguous()

    @staticmethod
    def backward(ctx, grad):
        r0, rn, c0, cn = ctx.box
        full = grad.new_zeros(ctx.shape)
        full[:, :, r0:r0 + rn, c0:c0 + cn] = grad
        return full, None, None, None, None


class CroppedConv2d(nn.Conv2d):
    """``nn.Conv2d`` that leaves out the kernel taps meeting only zero padding (a CNN's last
    stages on small images: a 3x3 convolution of a 1x1 map uses its centre alone), and
    computes a single output position that covers the whole input as one matrix product.
    Same parameters, function and gradients, rounding apart (Methods: padding taps left out)."""

    def _conv_forward(self, x, weight, bias):
        if self.padding_mode != "zeros" or isinstance(self.padding, str):
            return super()._conv_forward(x, weight, bias)
        (h, w), (kh, kw) = x.shape[-2:], weight.shape[-2:]
        rows = _live_taps(h, kh, self.stride[0], self.padding[0], self.dilation[0])
        cols = _live_taps(w, kw, self.stride[1], self.padding[1], self.dilation[1])
        if rows is None and cols is None:
            return super()._conv_forward(x, weight, bias)
        r0, rn, rp = rows or (0, kh, self.padding[0])
        c0, cn, cp = cols or (0, kw, self.padding[1])
        weight = _LiveTaps.apply(weight, r0, rn, c0, cn)
        if self.groups == 1 and (rn, cn, rp, cp) == (h, w, 0, 0):
            return F.linear(x.flatten(1), weight.flatten(1), bias)[:, :, None, None]
        return F.conv2d(x, weight, bias, self.stride, (rp, cp), self.dilation, self.groups)


def crop_dead_taps(model: nn.Module) -> nn.Module:
    """Every plain ``nn.Conv2d`` of ``model`` made a :class:`CroppedConv2d` (in place)."""
    for m in model.modules():
        if type(m) is nn.Conv2d:
            m.__class__ = CroppedConv2d
    return model


def create(name: str, num_classes: int, weights=None, in_chans: int = 3, img_size: int | None = None,
           mean=None, std=None, **kwargs) -> nn.Module:
    """A timm model (or ``"smallcnn"``) with a ``num_classes`` head.

    ``weights``: None (random init), ``"hub"`` (timm's pre-trained weights; needs internet) or
    the path of a local state_dict, loaded through the same code as hub weights.
    ``img_size``, ``mean``, ``std`` set the input the model expects (see :func:`input_spec`).
    """
    if weights not in (None, "hub") and not Path(weights).is_file():
        raise FileNotFoundError(f"weights: no file at {weights} (use None, 'hub' or a path)")
    if name == SMALL_CNN:
        model = SmallCNN(num_classes, in_chans=in_chans, **kwargs)
    else:
        import timm  # here, not at import: it pulls in torchvision and torch._dynamo (~2.5 s)
        from timm.layers import register_notrace_module

        register_notrace_module(CroppedConv2d)  # a leaf for FX feature extraction, like nn.Conv2d

        if not timm.is_model(name):
            hint = did_you_mean(name, timm.list_models() + [SMALL_CNN])
            raise ValueError(f"model: unknown architecture {name!r}{hint}")
        if img_size is not None and _takes_img_size(name):
            kwargs["img_size"] = img_size
        model = timm.create_model(name, pretrained=weights == "hub", num_classes=num_classes,
                                  in_chans=in_chans, **kwargs)
    if weights not in (None, "hub"):
        load_weights(model, weights)
    cfg = dict(getattr(model, "pretrained_cfg", {}) or {})
    if img_size is not None:
        cfg["input_size"] = (in_chans, img_size, img_size)
    if mean is not None:
        cfg["mean"], cfg["std"] = tuple(mean), tuple(std)
    model.pretrained_cfg = cfg
    return crop_dead_taps(model)


def _takes_img_size(name: str) -> bool:
    """Before the model exists: transformer families whose constructor takes ``img_size`` (PVT v2
    has no position table: it runs at any size and its constructor refuses ``img_size``)."""
    return any(k in name for k in ("vit", "deit", "swin", "cait", "eva", "beit"))


def is_token_model(model: nn.Module) -> bool:
    """A transformer whose layers carry a token sequence (timm's ViT family), not feature maps:
    the one test that extraction and the chapters use."""
    return getattr(model, "num_prefix_tokens", None) is not None and hasattr(model, "blocks")


def load_weights(model: nn.Module, path) -> nn.Module:
    """Load a state_dict file (a timm checkpoint or one of ours); a classifier whose shape
    differs is left at its fresh initialization, any other mismatch is an error."""
    state = torch.load(Path(path), map_location="cpu", weights_only=True)
    state = state.get("model", state.get("state_dict", state))
    own = model.state_dict()
    head = _classifier_prefixes(model)
    state = {k: v for k, v in state.items()
             if not (any(k.startswith(h) for h in head) and (k not in own or own[k].shape != v.shape))}
    shape = [k for k, v in state.items() if k in own and own[k].shape != v.shape]
    missing = [k for k in own if k not in state and not any(k.startswith(h) for h in head)]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected or shape:
        raise ValueError(f"weights {path} do not fit {type(model).__name__}: missing "
                         f"{missing[:3]}, unexpected {unexpected[:3]}, other shape {shape[:3]}")
    model.load_state_dict(state, strict=False)
    return model


def checkpoint_classes(name: str, path) -> int:
    """The number of classes of the head saved in a checkpoint of architecture ``name``."""
    state = torch.load(Path(path), map_location="cpu", weights_only=True)
    state = state.get("model", state.get("state_dict", state))
    for prefix in _classifier_prefixes(create(name, 1)):
        weight = state.get(prefix + "weight")
        if weight is not None and weight.ndim == 2:
            return int(weight.shape[0])
    raise ValueError(f"weights {path}: no classifier weight of {name} found in the checkpoint")


def _classifier_prefixes(model: nn.Module) -> list[str]:
    classifier = model.get_classifier()
    names = [n for n, m in model.named_modules() if m is classifier]
    return [n + "." for n in names] or ["head.", "fc.", "classifier."]


def input_spec(model: nn.Module) -> dict:
    """Input the model expects: ``size``, ``channels``, ``mean``, ``std`` (from pretrained_cfg)."""
    cfg = getattr(model, "pretrained_cfg", {}) or {}
    channels, size, _ = cfg.get("input_size", (3, 224, 224))
    return {"size": int(size), "channels": int(channels),
            "mean": tuple(cfg.get("mean", (0.5,) * channels)),
            "std": tuple(cfg.get("std", (0.5,) * channels))}


def preprocess(images: torch.Tensor, spec: dict) -> torch.Tensor:
    """uint8 (N, C, H, W) -> normalized float at the model's size and channel count."""
    x = images.float() / 255
    if x.shape[1] == 1 and spec["channels"] == 3:
        x = x.expand(-1, 3, -1, -1)
    if x.shape[1] != spec["channels"]:
        raise ValueError(f"images have {x.shape[1]} channels, the model expects {spec['channels']}")
    if x.shape[-1] != spec["size"] or x.shape[-2] != spec["size"]:
        x = F.interpolate(x, size=(spec["size"], spec["size"]), mode="bilinear", antialias=True,
                          align_corners=False)
    mean = torch.tensor(spec["mean"], device=x.device).view(1, -1, 1, 1)
    std = torch.tensor(spec["std"], device=x.device).view(1, -1, 1, 1)
    return (x - mean) / std


def predict_batches(model: nn.Module, images: torch.Tensor, fn=None, batch_size: int = 256,
                    device=None, spec: dict | None = None):
    """Yield ``(start, fn(model, x))`` for each batch of uint8 ``images``, ``x`` the batch
    prepared by :func:`preprocess` (``spec``: the model's :func:`input_spec`; float ``images``
    are taken as prepared already, e.g. a frozen prefix's outputs); ``fn`` defaults to the
    logits. The one batched inference loop of the package (extraction, evaluation,
    pre-logits, double descent): evaluation mode (restored after), inference mode (no autograd;
    the caller's code between batches runs in it too, so keep tensors made there only through
    a copy or a function applied after the loop), mixed precision and channels-last on a GPU, pinned
    host memory for the copies."""
    from .device import autocast, get_device

    device = get_device(device, quiet=True)
    spec = spec or (None if images.is_floating_point() else input_spec(model))
    was_training = model.training
    model.eval().to(device)
    if device.type == "cuda":
        model.to(memory_format=torch.channels_last)
    try:
        with torch.inference_mode():
            for start in range(0, len(images), batch_size):
                batch = images[start:start + batch_size]
                if device.type == "cuda" and not batch.is_cuda:
                    batch = batch.pin_memory()
                x = batch.to(device, non_blocking=True)
                x = x if x.is_floating_point() else preprocess(x, spec)
                with autocast(device):
                    yield start, (fn or _logits)(model, x)
    finally:
        model.train(was_training)


def _logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return model(x).float()


def layer_names(model: nn.Module) -> list[str]:
    """The modules whose outputs count as layers, in forward order (timm's feature_info)."""
    info = getattr(model, "feature_info", None)
    if not info:
        raise ValueError(f"{type(model).__name__} declares no feature_info: no layers to probe")
    names = [f["module"] for f in info]
    if is_token_model(model):
        names = [f"blocks.{i}" for i in range(len(model.blocks))]  # ViT: every block
    return names


def _param_layer(model: nn.Module) -> list[int]:
    """For each parameter (named order), the index of the first layer that uses it."""
    layers = layer_names(model)
    head = _classifier_prefixes(model)
    params = [n for n, _ in model.named_parameters()]
    where, current = [], 0
    for n in params:
        owner = next((i for i, m in enumerate(layers) if n.startswith(m + ".")), None)
        if owner is not None:
            current = owner
        elif any(n.startswith(h) for h in head) or current == len(layers) - 1:
            current = len(layers)  # the head and what follows the last layer: never frozen
        where.append(current if owner is None else owner)
    return where


def freeze_first(model: nn.Module, k: int) -> int:
    """Freeze the first ``k`` layers (with the stem before them); return trainable parameters.

    ``k = 0`` trains everything; ``k = len(layer_names(model))`` leaves only the head (and
    any final norm) trainable (Chapter 4).
    """
    n_layers = len(layer_names(model))
    if not 0 <= k <= n_layers:
        raise ValueError(f"k must be in 0..{n_layers} (layers of {type(model).__name__}), got {k}")
    where = _param_layer(model)
    for (name, p), layer in zip(model.named_parameters(), where):
        p.requires_grad_(layer >= k)
    return trainable_parameters(model)


def trainable_parameters(model: nn.Module) -> int:
    """Number of parameters of ``model`` that require gradients."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def replace_head(model: nn.Module, num_classes: int) -> nn.Module:
    """A fresh ``num_classes`` classifier (timm's reset_classifier)."""
    model.reset_classifier(num_classes)
    return model


def frozen_layers(model: nn.Module) -> int:
    """How many leading layers (:func:`layer_names`, stem included) have every parameter
    frozen: the ``k`` of :func:`freeze_first`."""
    trainable = [layer for (_, p), layer in zip(model.named_parameters(), _param_layer(model))
                 if p.requires_grad]
    return min(trainable, default=len(layer_names(model)))


def _smallcnn_prefix(model, x, k):
    return model.blocks[:k](x)


def _smallcnn_rest(model, h, k):
    return model.forward_head(model.blocks[k:](h))


def _resnet_prefix(model, x, k):  # layers: act1 (the stem), layer1..layer4
    x = model.act1(model.bn1(model.conv1(x)))
    if k >= 2:
        x = model.maxpool(x)
    for i in range(1, k):
        x = getattr(model, f"layer{i}")(x)
    return x


def _resnet_rest(model, h, k):
    if k == 1:
        h = model.maxpool(h)
    for i in range(k, 5):
        h = getattr(model, f"layer{i}")(h)
    return model.forward_head(h)


def _vit_prefix(model, x, k):  # layers: every block
    x = model.norm_pre(model.patch_drop(model._pos_embed(model.patch_embed(x))))
    return model.blocks[:k](x)


def _vit_rest(model, h, k):
    return model.forward_head(model.norm(model.blocks[k:](h)))


#: per family (class name): (prefix up to layer k, the rest from there), the contract of
#: :func:`split`
_SPLITS = {"SmallCNN": (_smallcnn_prefix, _smallcnn_rest),
           "ResNet": (_resnet_prefix, _resnet_rest),
           "VisionTransformer": (_vit_prefix, _vit_rest)}


class _Rest(nn.Module):
    """``model`` run from the output of its first ``k`` layers to the logits."""

    def __init__(self, model: nn.Module, k: int, rest):
        super().__init__()
        self.model, self.k, self._rest = model, k, rest

    def forward(self, h):
        return self._rest(self.model, h, self.k)


def split(model: nn.Module, k: int):
    """``(prefix, rest)``: ``prefix(model, x)`` runs the first ``k`` layers, ``rest`` (a
    module sharing ``model``'s parameters) the others and the head, so that
    ``rest(prefix(model, x)) == model(x)``; None for ``k = 0`` or a family without a split
    (SmallCNN, timm's ResNet and ViT have one). The training loop runs a frozen prefix once
    (Chapter 4)."""
    found = _SPLITS.get(type(model).__name__)
    if not k or found is None:
        return None
    prefix, rest = found
    return (lambda m, x: prefix(m, x, k)), _Rest(model, k, rest)
