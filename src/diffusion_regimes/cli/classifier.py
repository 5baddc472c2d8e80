"""``classifier-train``: the two-class labeller of generated samples (docs/science.md section 5)."""

from __future__ import annotations

import argparse

from diffusion_regimes.cli.common import add_spec_arguments, job_summary, load_subset
from diffusion_regimes.config import from_json
from diffusion_regimes.errors import DataError
from diffusion_regimes.runtime import resolve_device, set_threads
from diffusion_regimes.seeds import derived_seed


def _classifier_train(args: argparse.Namespace) -> None:
    from diffusion_regimes.classifier import (
        ClassifierSpec,
        confident_fraction,
        probabilities,
        save_classifier,
        train_classifier,
    )
    from diffusion_regimes.regimes import CONFIDENT

    set_threads(args.threads)
    spec = from_json(ClassifierSpec, args.spec, where="classifier")
    subset = load_subset(args.subset)
    seed = derived_seed(args.seed, "classifier", subset.dataset)
    # the official test split, when the dataset has one, is the held-out set; else a random part
    test_split = subset.held_out_images is not None
    validation = (subset.held_out_images, subset.held_out_labels) if test_split else None
    trained = train_classifier(subset.images, subset.labels, spec=spec, seed=seed,
                               device=resolve_device(args.device), progress=True, validation=validation)
    held_out = probabilities(trained.model,
                             subset.held_out_images if test_split else subset.images[trained.held_out])
    real_confident = confident_fraction(held_out, level=CONFIDENT)
    save_classifier(trained, args.out, seed=seed, extra={
        "dataset": subset.dataset, "classes": list(subset.classes),
        # the quality gate of generated samples compares against this (confident = max probability >= 0.9)
        "held_out_confident_fraction": real_confident,
        "held_out_set": ("official test split" if test_split
                         else f"random {spec.held_out_fraction} of the subset")})
    job_summary().update(held_out_accuracy=trained.accuracy, held_out_confident_fraction=real_confident,
                         train_images=trained.n_train)
    if trained.accuracy < spec.min_accuracy:
        raise DataError(f"classifier held-out accuracy {trained.accuracy:.3f} < classifier.min_accuracy "
                        f"{spec.min_accuracy}; raise classifier.epochs or use architecture: resnet18")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("classifier-train", help="train the two-class labeller on a prepared subset")
    add_spec_arguments(p)
    p.add_argument("--subset", required=True)
    p.add_argument("--out", required=True, help="checkpoint path (.pt); the accuracy goes to .json beside it")
    p.set_defaults(func=_classifier_train, uses_network=True)
