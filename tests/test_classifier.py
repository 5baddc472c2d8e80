"""The classifier learns a planted two-class problem, is deterministic by seed, and round-trips to disk."""

import torch

from diffusion_regimes.classifier import (
    ClassifierSpec,
    ResNet18,
    accuracy_of,
    classifier_confidence,
    load_classifier,
    predict,
    save_classifier,
    train_classifier,
)


def _planted(n=160, seed=0):
    # class 1 has a bright 4x4 square in the corner, class 0 in the opposite corner, plus noise
    gen = torch.Generator().manual_seed(seed)
    x = 0.3 * torch.randn(n, 1, 12, 12, generator=gen)
    y = torch.arange(n) % 2
    x[y == 1, :, :4, :4] += 1.0
    x[y == 0, :, -4:, -4:] += 1.0
    return x, y


def test_cnn_learns_planted_classes_deterministically_and_round_trips(tmp_path):
    x, y = _planted()
    spec = ClassifierSpec(epochs=4, batch_size=32)
    a = train_classifier(x, y, spec=spec, seed=1)
    b = train_classifier(x, y, spec=spec, seed=1)
    # the planted squares are 3 noise sd bright over 16 pixels: any working classifier gets them all
    assert a.accuracy >= 0.95 and a.accuracy == b.accuracy
    for pa, pb in zip(a.model.parameters(), b.model.parameters(), strict=True):
        assert torch.equal(pa, pb)
    path = tmp_path / "clf.pt"
    save_classifier(a, path, seed=1)
    model, record = load_classifier(path)
    assert accuracy_of(path) == a.accuracy and record["architecture"] == "cnn"
    assert torch.equal(predict(model, x.double()), a.predict(x))


def test_resnet18_shapes_and_size():
    net = ResNet18(3)
    assert net(torch.zeros(2, 3, 16, 16)).shape == (2, 2)
    # 11.2 M parameters for the standard ResNet-18 body with a 2-class head
    assert 11.0e6 < sum(p.numel() for p in net.parameters()) < 11.3e6


class _LogitIsPixel(torch.nn.Module):
    """Logits (0, x) for a one-pixel image x: the top probability is sigmoid(|x|)."""

    def __init__(self) -> None:
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x):
        z = x.flatten(1)[:, :1]
        return torch.cat([torch.zeros_like(z), z], dim=1)


def test_classifier_confidence_counts_top_probability_at_least_threshold():
    # sigmoid(|x|) >= 0.9 exactly when |x| >= log 9 = 2.197; values kept 0.1 away from the boundary
    x = torch.tensor([0.0, 1.0, -2.0, 2.1, 2.3, -2.3, 5.0, -40.0]).reshape(-1, 1, 1, 1)
    model = _LogitIsPixel()
    assert classifier_confidence(model, x) == 4 / 8
    assert classifier_confidence(model, x, threshold=0.5) == 1.0  # every top probability is >= 1/2
    assert classifier_confidence(model, x, threshold=0.99) == 2 / 8  # |x| >= log 99 = 4.595
