"""The parameter contract: each job's view of the config (diffusion_regimes.jobs) names real keys only."""

import dataclasses
import json
import typing
from pathlib import Path

import pytest

from diffusion_regimes.classifier import ClassifierSpec
from diffusion_regimes.config import load_yaml, validate
from diffusion_regimes.errors import ConfigError
from diffusion_regimes.gaussian_mixture import GaussianMixtureConfig
from diffusion_regimes.ideal_models import IdealModelsSpec
from diffusion_regimes.jobs import JOB_KEYS, job_spec, job_view
from diffusion_regimes.memorisation import MemorisationSpec
from diffusion_regimes.regimes import RegimesSpec
from diffusion_regimes.speciation import SpeciationSpec
from diffusion_regimes.spectrum import SpectraOptions
from diffusion_regimes.train import TrainConfig
from diffusion_regimes.unet import UNetSpec

REPO = Path(__file__).resolve().parents[1]
SECTIONS = {"spectra": SpectraOptions, "classifier": ClassifierSpec, "train": TrainConfig, "unet": UNetSpec,
            "regimes": RegimesSpec, "gaussian_mixture": GaussianMixtureConfig, "speciation": SpeciationSpec,
            "memorisation": MemorisationSpec, "ideal_models": IdealModelsSpec}


def _field_type(cls, name):
    fields = {f.name: f for f in dataclasses.fields(cls)}
    assert name in fields, f"{cls.__name__} has no field {name!r}"
    return typing.get_type_hints(cls)[name]


@pytest.mark.parametrize("job", sorted(JOB_KEYS))
def test_every_key_of_a_view_is_a_field_of_its_section(job):
    section, keys = JOB_KEYS[job]
    cls = SECTIONS[section]
    for key in keys:
        if key == "*" or key.startswith("-"):
            if key.startswith("-"):
                _field_type(cls, key[1:])
            continue
        owner = cls
        *parents, leaf = key.split(".")
        for parent in parents:
            owner = _field_type(owner, parent)
            assert dataclasses.is_dataclass(owner), f"{job}: {parent} is not a nested section"
        _field_type(owner, leaf)


def _default_config():
    config = load_yaml(REPO / "config" / "config.yaml")
    validate(config, REPO / "workflow" / "schemas" / "config.schema.yaml")
    return config


def test_views_hold_only_what_the_job_reads():
    config = _default_config()
    clone = job_view(config, "regimes_clone")
    # per-model keys are resolved by the workflow and passed on their own; thresholds belong to the row job
    assert not {"sampler_steps", "sampler_variance", "n_pairs", "quality_phi_min", "datasets"} & set(clone)
    assert clone["chunk_pairs"] == config["regimes"]["chunk_pairs"]
    assert set(job_view(config, "regimes_row")) == {"quality_phi_min", "quality_confidence_gap"}
    law = job_view(config, "gm_collapse_law")
    assert law["law"] == config["gaussian_mixture"]["law"] and set(law["collapse"]) == {"level"}
    assert "speciation" not in law
    train = job_view(config, "train_ddpm")
    assert "datasets" not in train and train["steps"] == config["train"]["steps"]
    # every view builds its section: absent keys take the section's defaults
    for job, (section, _) in JOB_KEYS.items():
        from diffusion_regimes.config import build

        build(SECTIONS[section], json.loads(job_spec(config, job)), where=job)


def test_a_key_outside_the_view_leaves_the_spec_unchanged():
    config = _default_config()
    before = {job: job_spec(config, job) for job in JOB_KEYS}
    config["regimes"]["quality_phi_min"] = 0.5
    config["regimes"]["sampler_steps"] = {"unet": 50}
    config["gaussian_mixture"]["law"]["ns"] = [10]
    after = {job: job_spec(config, job) for job in JOB_KEYS}
    changed = {job for job in JOB_KEYS if before[job] != after[job]}
    assert changed == {"regimes_row", "gm_collapse_law"}


def test_unknown_job_is_a_config_error():
    with pytest.raises(ConfigError, match="no parameter view"):
        job_view({}, "regimes_clonee")
