"""Two-class image classifier used to label generated samples for phi(t) (docs/science.md section 5).

The paper uses a ResNet-18 (> 95 % test accuracy); the default here is a small CNN that reaches that on
the MNIST pair in seconds on a CPU.  Both are written in this module.  The paper fine-tunes an
ImageNet-pretrained ResNet-18 at 224 px; ``classifier.pretrained`` offers that: the torchvision weights
file (a plain state dict, read without torchvision) is loaded into :class:`ResNet18` with the ImageNet stem,
optionally fetched once with a checksummed opt-in download (:func:`fetch_resnet18_weights`).  Training from
scratch stays the offline default.  The model is trained on the prepared (centred) images with a held-out
split whose accuracy is saved next to the checkpoint and carried into every phi(t) table.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn
from torch.nn import functional as F

from diffusion_regimes.config import to_dict
from diffusion_regimes.data.sources import sha256
from diffusion_regimes.errors import ConfigError, DataError
from diffusion_regimes.provenance import save_torch, write_json

RESNET18_URL = "https://download.pytorch.org/models/resnet18-f37072fd.pth"
# torchvision names its weight files after the first 8 hex digits of their SHA-256 (torch.hub's check).
RESNET18_SHA256_PREFIX = "f37072fd"


@dataclass(frozen=True)
class ClassifierSpec:
    """The ``classifier:`` config section."""

    architecture: Literal["cnn", "resnet18"] = "cnn"
    held_out_fraction: float = 0.2
    epochs: int = 8
    batch_size: int = 64
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    min_accuracy: float = 0.9  # below this the run stops: phi(t) needs a reliable labeller
    # The paper's fine-tuning (authors' train_classifier.py): ImageNet weights, 224 px inputs, Adam 1e-4 on
    # the body and 1e-3 on the head, learning rate x 0.1 after every epoch, dropout 0.5 before the head.
    pretrained: str | None = None  # torchvision ResNet-18 state dict (resnet18-f37072fd.pth); resnet18 only
    download: bool = False  # fetch `pretrained` from RESNET18_URL (SHA-256 checked) when it is missing
    resize: int | None = None  # images resized (bilinear) to resize x resize before the network
    head_learning_rate: float | None = None  # Adam learning rate of the linear head (None: learning_rate)
    lr_gamma: float = 1.0  # StepLR: every learning rate is multiplied by this after each epoch
    head_dropout: float = 0.0  # dropout before the linear head

    def __post_init__(self) -> None:
        if self.pretrained is not None and self.architecture != "resnet18":
            raise ConfigError(f"classifier.pretrained needs architecture: resnet18 (got "
                              f"{self.architecture!r}); set classifier.architecture: resnet18 or "
                              f"classifier.pretrained: null")


class SmallCNN(nn.Module):
    """Three 3x3 conv blocks (32, 64, 128 channels) with max-pooling, global average pool, linear head."""

    def __init__(self, in_channels: int, n_classes: int = 2) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = in_channels
        for out in (32, 64, 128):
            layers += [nn.Conv2d(width, out, 3, padding=1), nn.BatchNorm2d(out), nn.ReLU(), nn.MaxPool2d(2)]
            width = out
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(width, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean(dim=(2, 3)))


class _BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(y)) + self.shortcut(x))


class ResNet18(nn.Module):
    """ResNet-18 (He et al. 2016): ``(B, C, H, W)`` -> logits ``(B, n_classes)``.

    ``imagenet_stem = False``: the small-image stem (3x3 conv, no max-pool), as used on 32x32 data;
    ``True``: torchvision's stem (7x7 stride-2 conv, 3x3 stride-2 max-pool), the one ImageNet weights fit.
    ``input_size``: images are resized (bilinear) to that side first (the paper's fine-tuning: 224).
    ``head_dropout``: dropout before the linear head.
    """

    def __init__(self, in_channels: int, n_classes: int = 2, *, imagenet_stem: bool = False,
                 input_size: int | None = None, head_dropout: float = 0.0) -> None:
        super().__init__()
        self.input_size = input_size
        if imagenet_stem:
            self.stem = nn.Sequential(nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False),
                                      nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(3, stride=2, padding=1))
        else:
            self.stem = nn.Sequential(nn.Conv2d(in_channels, 64, 3, padding=1, bias=False),
                                      nn.BatchNorm2d(64), nn.ReLU())
        blocks: list[nn.Module] = []
        width = 64
        for out, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            blocks += [_BasicBlock(width, out, stride), _BasicBlock(out, out, 1)]
            width = out
        self.blocks = nn.Sequential(*blocks)
        self.dropout = nn.Dropout(head_dropout)
        self.head = nn.Linear(width, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        side = self.input_size
        if side is not None and tuple(x.shape[-2:]) != (side, side):
            x = F.interpolate(x, size=(side, side), mode="bilinear", align_corners=False)
        return self.head(self.dropout(self.blocks(self.stem(x)).mean(dim=(2, 3))))


ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {"cnn": SmallCNN, "resnet18": ResNet18}


def build_classifier(architecture: str, in_channels: int, **options: Any) -> nn.Module:
    """The named network for ``in_channels``-channel images; ``options`` go to :class:`ResNet18`."""
    if architecture not in ARCHITECTURES:
        raise ValueError(f"architecture {architecture!r} unknown; choose one of {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[architecture](in_channels, **options)


def _network_options(spec: ClassifierSpec) -> dict[str, Any]:
    """Constructor options of :class:`ResNet18` implied by the spec (none for the CNN)."""
    if spec.architecture != "resnet18":
        return {}
    return {"imagenet_stem": spec.pretrained is not None, "input_size": spec.resize,
            "head_dropout": spec.head_dropout}


def torchvision_key(key: str) -> str | None:
    """Our :class:`ResNet18` state-dict key -> the torchvision ``resnet18`` key holding the same tensor.

    ``None`` for the head (torchvision's is a 1000-class ``fc``; ours is trained from scratch).
    """
    if key.startswith("head."):
        return None
    if key.startswith("stem.0."):
        return "conv1." + key.removeprefix("stem.0.")
    if key.startswith("stem.1."):
        return "bn1." + key.removeprefix("stem.1.")
    _, index, rest = key.split(".", 2)  # blocks.<i>.<rest>: two blocks per torchvision layer
    layer, block = divmod(int(index), 2)
    rest = rest.replace("shortcut.0.", "downsample.0.").replace("shortcut.1.", "downsample.1.")
    return f"layer{layer + 1}.{block}.{rest}"


def load_torchvision_resnet18(model: ResNet18, path: str | Path) -> None:
    """Copy the torchvision ResNet-18 weights file ``path`` (a state dict) into ``model`` in place.

    Every body tensor is copied; the 1000-class ``fc`` is not (our head is new).  For images that are not
    RGB the first convolution keeps its fresh initialisation, as the paper's authors do for MNIST.
    """
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file means a wrong or corrupt download
        raise DataError(f"classifier.pretrained: cannot read {path} as a state dict ({exc}); expected "
                        f"torchvision's ResNet-18 weights from {RESNET18_URL}") from exc
    own = model.state_dict()
    rgb = model.stem[0].weight.shape[1] == 3
    mapped: dict[str, torch.Tensor] = {}
    for key, tensor in own.items():
        source = torchvision_key(key)
        if source is None or (source == "conv1.weight" and not rgb):
            continue
        if source not in state:
            raise DataError(f"classifier.pretrained: {path} has no {source!r} (for {key}); it is not a "
                            f"torchvision ResNet-18 state dict ({RESNET18_URL})")
        if state[source].shape != tensor.shape:
            raise DataError(f"classifier.pretrained: {path}: {source!r} has shape "
                            f"{tuple(state[source].shape)}, expected {tuple(tensor.shape)}; it is not a "
                            f"torchvision ResNet-18 state dict")
        mapped[key] = state[source]
    model.load_state_dict(mapped, strict=False)


def fetch_resnet18_weights(target: Path) -> Path:
    """Download torchvision's ResNet-18 ImageNet weights to ``target`` with pooch, checking that the
    SHA-256 starts with the published prefix in the file name; a failed check keeps nothing."""
    import pooch

    # one partial file per process: the classifier jobs of several datasets may fetch at the same time, and
    # the final rename is atomic, so each finds either no file or a whole, checked one
    partial = target.with_name(f"{target.name}.{os.getpid()}.part")
    try:
        fetched = Path(pooch.retrieve(RESNET18_URL, known_hash=None, fname=partial.name, path=target.parent,
                                      progressbar=True))
    except Exception as exc:  # noqa: BLE001 - network errors of any kind
        raise DataError(f"ResNet-18 weights download from {RESNET18_URL} failed ({exc})") from exc
    digest = sha256(fetched)
    if not digest.startswith(RESNET18_SHA256_PREFIX):
        fetched.unlink()
        raise DataError(f"ResNet-18 weights from {RESNET18_URL}: SHA-256 {digest} does not start with "
                        f"{RESNET18_SHA256_PREFIX}; nothing was kept")
    fetched.replace(target)
    return target


def pretrained_weights(spec: ClassifierSpec) -> Path:
    """The weights file of ``spec.pretrained``, downloaded first when missing and ``spec.download`` is on."""
    path = Path(spec.pretrained or "")
    if not path.is_file():
        if not spec.download:
            raise DataError(
                f"classifier.pretrained: {path} not found. Download {RESNET18_URL} there (its SHA-256 starts "
                f"with {RESNET18_SHA256_PREFIX}), or set classifier.download: true to fetch it, or set "
                f"classifier.pretrained: null to train the ResNet-18 from scratch"
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        fetch_resnet18_weights(path)
    return path


@dataclass(frozen=True)
class TrainedClassifier:
    model: nn.Module
    spec: ClassifierSpec
    in_channels: int
    accuracy: float  # on the held-out split
    n_train: int
    n_held_out: int
    held_out: torch.Tensor  # (n_held_out,) indices of the held-out images

    def predict(self, images: torch.Tensor, *, batch_size: int = 512) -> torch.Tensor:
        """Class labels ``(B,)`` long for images ``(B, C, H, W)`` (any float dtype/device; centred pixels)."""
        return predict(self.model, images, batch_size=batch_size)


def probabilities(model: nn.Module, images: torch.Tensor, *, batch_size: int = 512) -> torch.Tensor:
    """Class probabilities ``(B, K)`` float64 of ``model`` on ``images (B, C, H, W)``, in eval mode, batched.

    The softmax runs in float64 on the network's float32 logits, so thresholds on the probability (the
    quality gate's 0.9) are not blurred by float32 rounding.
    """
    device = next(model.parameters()).device
    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, images.shape[0], batch_size):
            batch = images[start:start + batch_size].to(device=device, dtype=torch.float32)
            out.append(torch.softmax(model(batch).double(), dim=1).cpu())
    return torch.cat(out) if out else torch.zeros((0, 2), dtype=torch.float64)


def predict(model: nn.Module, images: torch.Tensor, *, batch_size: int = 512) -> torch.Tensor:
    """Arg-max labels ``(B,)`` of ``model`` on ``images (B, C, H, W)``, in eval mode, batched."""
    return probabilities(model, images, batch_size=batch_size).argmax(dim=1)


def confident_fraction(probs: torch.Tensor, *, level: float = 0.9) -> float:
    """Fraction of rows of ``probs (B, K)`` whose largest class probability reaches ``level``."""
    return float((probs.max(dim=1).values >= level).double().mean()) if probs.shape[0] else float("nan")


def classifier_confidence(model: nn.Module, images: torch.Tensor, *, threshold: float = 0.9) -> float:
    """Fraction of ``images (B, C, H, W)`` (centred pixels) whose top class probability is >= ``threshold``.

    A sample quality measure with a real-data reference: malformed samples sit between the classes and
    get probabilities near 1/2, so compare this fraction on generated samples with the same fraction on
    held-out real images.
    """
    if images.shape[0] == 0:
        raise ValueError("classifier_confidence needs at least one image")
    return confident_fraction(probabilities(model, images), level=threshold)


def split_indices(
    n: int, *, held_out_fraction: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random (train, held-out) index split of ``n`` items; at least one item on each side."""
    perm = torch.randperm(n, generator=generator)
    n_out = min(n - 1, max(1, round(held_out_fraction * n)))
    return perm[n_out:], perm[:n_out]


def train_classifier(
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    spec: ClassifierSpec,
    seed: int,
    device: torch.device | str = "cpu",
    progress: bool = False,
    validation: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> TrainedClassifier:
    """Train on ``images (n, C, H, W)``, ``labels (n,)`` in {0, 1}; deterministic given ``seed``.

    Adam with cross-entropy for ``spec.epochs`` epochs over the training part; the held-out accuracy is
    measured at the end.  ``validation``: ``(images, labels)`` of a separate held-out set (a dataset's
    official test split); then every image of ``images`` trains and the accuracy is measured on it
    (``held_out`` is empty), else ``spec.held_out_fraction`` of ``images`` is held out at random.
    """
    gen = torch.Generator().manual_seed(seed)
    if validation is None:
        train_idx, test_idx = split_indices(images.shape[0], held_out_fraction=spec.held_out_fraction,
                                            generator=gen)
    else:
        train_idx, test_idx = torch.arange(images.shape[0]), torch.zeros(0, dtype=torch.long)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # weight initialisation uses the global generator
        model = build_classifier(spec.architecture, images.shape[1], **_network_options(spec))
    if spec.pretrained is not None:
        load_torchvision_resnet18(model, pretrained_weights(spec))  # type: ignore[arg-type]
    model = model.to(device)
    x = images.to(torch.float32)
    y = labels.to(torch.long)
    head = list(model.head.parameters())  # both networks call their last layer ``head``
    body = [p for p in model.parameters() if all(p is not q for q in head)]
    head_lr = spec.head_learning_rate if spec.head_learning_rate is not None else spec.learning_rate
    opt = torch.optim.Adam([{"params": body, "lr": spec.learning_rate}, {"params": head, "lr": head_lr}],
                           weight_decay=spec.weight_decay)
    scheduler = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=spec.lr_gamma)
    epochs = range(spec.epochs)
    if progress:
        from diffusion_regimes.progress import progress as bar

        epochs = bar(epochs, desc=f"classifier ({spec.architecture})", unit="epoch")
    for _ in epochs:
        model.train()
        order = train_idx[torch.randperm(train_idx.numel(), generator=gen)]
        for start in range(0, order.numel(), spec.batch_size):
            batch = order[start:start + spec.batch_size]
            loss = F.cross_entropy(model(x[batch].to(device)), y[batch].to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        scheduler.step()
    if validation is None:
        accuracy = float((predict(model, x[test_idx]) == y[test_idx]).double().mean())
        n_held_out = int(test_idx.numel())
    else:
        held_x, held_y = validation
        accuracy = float((predict(model, held_x.to(torch.float32)) == held_y.to(torch.long)).double().mean())
        n_held_out = int(held_y.numel())
    return TrainedClassifier(model.cpu(), spec, images.shape[1], accuracy, int(train_idx.numel()),
                             n_held_out, test_idx)


def save_classifier(
    trained: TrainedClassifier, path: str | Path, *, seed: int, extra: dict[str, Any] | None = None
) -> None:
    """Checkpoint ``path`` (state_dict + spec + accuracy; loadable with ``weights_only=True``) and
    ``path`` with suffix ``.json`` holding the held-out accuracy and split sizes."""
    path = Path(path)
    record = {
        "architecture": trained.spec.architecture,
        "in_channels": trained.in_channels,
        "network_options": _network_options(trained.spec),
        "held_out_accuracy": trained.accuracy,
        "n_train": trained.n_train,
        "n_held_out": trained.n_held_out,
        "seed": seed,
        "spec": to_dict(trained.spec),
        **(extra or {}),
    }
    save_torch({"state_dict": trained.model.state_dict(), "record": record}, path, config=record, seed=seed)
    write_json(path.with_suffix(".json"), record, config=record, seed=seed)


def load_classifier(
    path: str | Path, *, device: torch.device | str = "cpu"
) -> tuple[nn.Module, dict[str, Any]]:
    """The model (eval mode, on ``device``) and its record from :func:`save_classifier`."""
    ckpt = torch.load(Path(path), map_location="cpu", weights_only=True)
    record = ckpt["record"]
    options = record.get("network_options", {})  # absent in checkpoints written before the option existed
    model = build_classifier(record["architecture"], record["in_channels"], **options)
    model.load_state_dict(ckpt["state_dict"])
    return model.to(device).eval(), record


def accuracy_of(path: str | Path) -> float:
    """Held-out accuracy recorded next to a classifier checkpoint."""
    return float(json.loads(Path(path).with_suffix(".json").read_text())["held_out_accuracy"])
