"""The classifier learns a planted two-class problem, is deterministic by seed, and round-trips to disk."""

import pytest
import torch

from diffusion_regimes.classifier import (
    ClassifierSpec,
    ResNet18,
    accuracy_of,
    classifier_confidence,
    fetch_resnet18_weights,
    load_classifier,
    load_torchvision_resnet18,
    predict,
    save_classifier,
    train_classifier,
)
from diffusion_regimes.errors import ConfigError, DataError

from .raw_data import resnet18_state


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


def test_a_separate_validation_set_is_the_held_out_set():
    """With `validation` (a dataset's official test split) every subset image trains and the accuracy is
    measured on the separate set: perfect on the planted classes, chance (0) once its labels are flipped."""
    x, y = _planted()
    held_x, held_y = _planted(n=40, seed=5)
    spec = ClassifierSpec(epochs=4, batch_size=32)
    trained = train_classifier(x, y, spec=spec, seed=1, validation=(held_x, held_y))
    assert trained.n_train == 160 and trained.n_held_out == 40 and trained.held_out.numel() == 0
    assert trained.accuracy >= 0.95
    flipped = train_classifier(x, y, spec=spec, seed=1, validation=(held_x, 1 - held_y))
    assert flipped.accuracy <= 0.05


def test_resnet18_shapes_and_size():
    net = ResNet18(3)
    assert net(torch.zeros(2, 3, 16, 16)).shape == (2, 2)
    # 11.2 M parameters for the standard ResNet-18 body with a 2-class head
    assert 11.0e6 < sum(p.numel() for p in net.parameters()) < 11.3e6


def _torchvision_resnet18_state(seed=0):
    """torchvision ``resnet18()``'s keys and shapes, every tensor random (62 parameters, 60 buffers)."""
    return resnet18_state(seed=seed, random_statistics=True)


def test_torchvision_resnet18_state_dict_loads(tmp_path):
    state = _torchvision_resnet18_state()
    path = tmp_path / "resnet18-f37072fd.pth"
    torch.save(state, path)
    net = ResNet18(3, imagenet_stem=True, input_size=224)
    load_torchvision_resnet18(net, path)
    ours = net.state_dict()
    # every body tensor is torchvision's: stem, both blocks of each layer, the stride-2 shortcuts
    pairs = {"stem.0.weight": "conv1.weight", "stem.1.running_var": "bn1.running_var",
             "blocks.0.conv1.weight": "layer1.0.conv1.weight", "blocks.7.bn2.bias": "layer4.1.bn2.bias",
             "blocks.2.shortcut.0.weight": "layer2.0.downsample.0.weight",
             "blocks.6.shortcut.1.running_mean": "layer4.0.downsample.1.running_mean"}
    for key, source in pairs.items():
        assert torch.equal(ours[key], state[source]), key
    copied = sum(1 for k in ours if not k.startswith("head."))
    assert copied == 120  # all but fc.weight / fc.bias
    with torch.no_grad():
        assert net.eval()(torch.zeros(1, 3, 16, 16)).shape == (1, 2)  # resized to 224 px inside
    # one-channel images (MNIST): the first conv stays freshly initialised, as the authors do
    gray = ResNet18(1, imagenet_stem=True)
    load_torchvision_resnet18(gray, path)
    assert torch.equal(gray.state_dict()["blocks.3.conv2.weight"], state["layer2.1.conv2.weight"])
    # a wrong file is named with the key it lacks
    del state["layer3.1.bn1.weight"]
    torch.save(state, path)
    with pytest.raises(DataError, match=r"layer3\.1\.bn1\.weight"):
        load_torchvision_resnet18(ResNet18(3, imagenet_stem=True), path)


def test_pretrained_classifier_recipe_and_missing_weights(tmp_path):
    path = tmp_path / "resnet18-f37072fd.pth"
    x, y = _planted(n=8)
    spec = ClassifierSpec(architecture="resnet18", pretrained=str(path), resize=32, epochs=2, batch_size=4,
                          learning_rate=1e-4, head_learning_rate=1e-3, lr_gamma=0.1, head_dropout=0.5,
                          weight_decay=0.0)
    with pytest.raises(DataError, match=r"not found.*resnet18-f37072fd\.pth.*classifier\.download: true"):
        train_classifier(x, y, spec=spec, seed=0)
    torch.save(_torchvision_resnet18_state(), path)
    trained = train_classifier(x, y, spec=spec, seed=0)
    out = tmp_path / "clf.pt"
    save_classifier(trained, out, seed=0)
    model, record = load_classifier(out)
    assert record["network_options"] == {"imagenet_stem": True, "input_size": 32, "head_dropout": 0.5}
    assert torch.equal(predict(model, x), trained.predict(x))
    with pytest.raises(ConfigError, match="architecture: resnet18"):
        ClassifierSpec(architecture="cnn", pretrained=str(path))


def test_weights_download_with_a_wrong_checksum_keeps_nothing(tmp_path, monkeypatch):
    # No network in tests: pooch's download is replaced by one writing a file that is not the weights.
    import pooch

    def fake_retrieve(url, *, known_hash, fname, path, progressbar):
        target = path / fname
        target.write_bytes(b"not the ResNet-18 weights")
        return str(target)

    monkeypatch.setattr(pooch, "retrieve", fake_retrieve)
    with pytest.raises(DataError, match="does not start with f37072fd"):
        fetch_resnet18_weights(tmp_path / "resnet18-f37072fd.pth")
    assert list(tmp_path.iterdir()) == []
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
