"""Two-class image classifier used to label generated samples for phi(t) (SCIENCE.md section 5).

The paper uses a ResNet-18 (> 95 % test accuracy); the default here is a small CNN that reaches that on
the MNIST pair in seconds on a CPU.  Both are written in this module (no pretrained download).  The model
is trained on the prepared (centred) images with a held-out split whose accuracy is saved next to the
checkpoint and carried into every phi(t) table.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn
from torch.nn import functional as F

from diffusion_regimes.config import to_dict
from diffusion_regimes.provenance import save_torch, write_json


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
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(y)) + self.shortcut(x))


class ResNet18(nn.Module):
    """ResNet-18 (He et al. 2016) with the small-image stem (3x3 conv, no max-pool), as used on 32x32 data."""

    def __init__(self, in_channels: int, n_classes: int = 2) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU())
        blocks: list[nn.Module] = []
        width = 64
        for out, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            blocks += [_BasicBlock(width, out, stride), _BasicBlock(out, out, 1)]
            width = out
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(width, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)).mean(dim=(2, 3)))


ARCHITECTURES: dict[str, Callable[[int], nn.Module]] = {"cnn": SmallCNN, "resnet18": ResNet18}


def build_classifier(architecture: str, in_channels: int) -> nn.Module:
    if architecture not in ARCHITECTURES:
        raise ValueError(f"architecture {architecture!r} unknown; choose one of {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[architecture](in_channels)


@dataclass(frozen=True)
class TrainedClassifier:
    model: nn.Module
    spec: ClassifierSpec
    in_channels: int
    accuracy: float  # on the held-out split
    n_train: int
    n_held_out: int

    def predict(self, images: torch.Tensor, *, batch_size: int = 512) -> torch.Tensor:
        """Class labels ``(B,)`` long for images ``(B, C, H, W)`` (any float dtype/device; centred pixels)."""
        return predict(self.model, images, batch_size=batch_size)


def predict(model: nn.Module, images: torch.Tensor, *, batch_size: int = 512) -> torch.Tensor:
    """Arg-max labels ``(B,)`` of ``model`` on ``images (B, C, H, W)``, in eval mode, batched."""
    device = next(model.parameters()).device
    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, images.shape[0], batch_size):
            batch = images[start:start + batch_size].to(device=device, dtype=torch.float32)
            out.append(model(batch).argmax(dim=1).cpu())
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.long)


def max_probability(model: nn.Module, images: torch.Tensor, *, batch_size: int = 512) -> torch.Tensor:
    """Largest softmax probability ``(B,)`` float64 of ``model`` on ``images (B, C, H, W)`` (eval mode)."""
    device = next(model.parameters()).device
    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, images.shape[0], batch_size):
            batch = images[start:start + batch_size].to(device=device, dtype=torch.float32)
            out.append(torch.softmax(model(batch).double(), dim=1).amax(dim=1).cpu())
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.float64)


def classifier_confidence(model: nn.Module, images: torch.Tensor, *, threshold: float = 0.9) -> float:
    """Fraction of ``images (B, C, H, W)`` (centred pixels) whose top class probability is >= ``threshold``.

    A sample quality measure with a real-data reference: malformed samples sit between the classes and
    get probabilities near 1/2, so compare this fraction on generated samples with the same fraction on
    held-out real images.
    """
    if images.shape[0] == 0:
        raise ValueError("classifier_confidence needs at least one image")
    return float((max_probability(model, images) >= threshold).double().mean())


def split_indices(n: int, *, held_out_fraction: float, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
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
) -> TrainedClassifier:
    """Train on ``images (n, C, H, W)``, ``labels (n,)`` in {0, 1}; deterministic given ``seed``.

    Adam with cross-entropy for ``spec.epochs`` epochs over the training part; the held-out accuracy is
    measured at the end.
    """
    gen = torch.Generator().manual_seed(seed)
    train_idx, test_idx = split_indices(images.shape[0], held_out_fraction=spec.held_out_fraction, generator=gen)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # weight initialisation uses the global generator
        model = build_classifier(spec.architecture, images.shape[1]).to(device)
    x = images.to(torch.float32)
    y = labels.to(torch.long)
    opt = torch.optim.Adam(model.parameters(), lr=spec.learning_rate, weight_decay=spec.weight_decay)
    epochs = range(spec.epochs)
    if progress:
        from tqdm.auto import tqdm

        epochs = tqdm(epochs, desc=f"classifier ({spec.architecture})", unit="epoch")
    for _ in epochs:
        model.train()
        order = train_idx[torch.randperm(train_idx.numel(), generator=gen)]
        for start in range(0, order.numel(), spec.batch_size):
            batch = order[start:start + spec.batch_size]
            loss = F.cross_entropy(model(x[batch].to(device)), y[batch].to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    accuracy = float((predict(model, x[test_idx]) == y[test_idx]).double().mean())
    return TrainedClassifier(model.cpu(), spec, images.shape[1], accuracy, int(train_idx.numel()), int(test_idx.numel()))


def save_classifier(trained: TrainedClassifier, path: str | Path, *, seed: int, extra: dict[str, Any] | None = None) -> None:
    """Checkpoint ``path`` (state_dict + spec + accuracy; loadable with ``weights_only=True``) and
    ``path`` with suffix ``.json`` holding the held-out accuracy and split sizes."""
    path = Path(path)
    record = {
        "architecture": trained.spec.architecture,
        "in_channels": trained.in_channels,
        "held_out_accuracy": trained.accuracy,
        "n_train": trained.n_train,
        "n_held_out": trained.n_held_out,
        "seed": seed,
        "spec": to_dict(trained.spec),
        **(extra or {}),
    }
    save_torch({"state_dict": trained.model.state_dict(), "record": record}, path)
    write_json(path.with_suffix(".json"), record)


def load_classifier(path: str | Path, *, device: torch.device | str = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """The model (eval mode, on ``device``) and its record from :func:`save_classifier`."""
    ckpt = torch.load(Path(path), map_location="cpu", weights_only=True)
    record = ckpt["record"]
    model = build_classifier(record["architecture"], record["in_channels"])
    model.load_state_dict(ckpt["state_dict"])
    return model.to(device).eval(), record


def accuracy_of(path: str | Path) -> float:
    """Held-out accuracy recorded next to a classifier checkpoint."""
    return float(json.loads(Path(path).with_suffix(".json").read_text())["held_out_accuracy"])
