from dataclasses import dataclass, field
from typing import Literal

import pytest

from diffusion_regimes.config import ConfigError, build, deep_merge, from_json, to_dict, validate


@dataclass(frozen=True)
class Inner:
    steps: int = 10
    mode: Literal["full", "reduced"] = "reduced"


@dataclass(frozen=True)
class Outer:
    dims: tuple[int, ...]
    rate: float = 0.5
    inner: Inner = field(default_factory=Inner)


def test_build_converts_lists_and_nested():
    cfg = build(Outer, {"dims": [1, 2], "inner": {"steps": 3}})
    assert cfg == Outer(dims=(1, 2), rate=0.5, inner=Inner(steps=3, mode="reduced"))
    assert to_dict(cfg) == {"dims": [1, 2], "rate": 0.5, "inner": {"steps": 3, "mode": "reduced"}}


def test_build_rejects_unknown_key_listing_valid_ones():
    with pytest.raises(ConfigError,
                       match=r"unknown key\(s\) \['dimz'\]; valid keys are \['dims', 'inner', 'rate'\]"):
        build(Outer, {"dimz": [1]})


def test_build_rejects_bad_literal_and_type():
    with pytest.raises(ConfigError, match=r"choose one of \['full', 'reduced'\]"):
        build(Outer, {"dims": [1], "inner": {"mode": "half"}})
    with pytest.raises(ConfigError, match="expected an integer"):
        build(Outer, {"dims": ["x"]})
    with pytest.raises(ConfigError, match="missing required key 'dims'"):
        build(Outer, {})


def test_from_json_round_trip():
    assert from_json(Outer, '{"dims": [4], "rate": 1}') == Outer(dims=(4,), rate=1.0)
    with pytest.raises(ConfigError, match="not valid JSON"):
        from_json(Outer, "{dims")


def test_deep_merge():
    assert deep_merge({"a": {"b": 1, "c": 2}, "d": 1}, {"a": {"b": 5}}) == {"a": {"b": 5, "c": 2}, "d": 1}


def test_schema_of_the_repository_validates_the_shipped_configs(repo):
    from diffusion_regimes.config import load_yaml

    schema = repo / "workflow" / "schemas" / "config.schema.yaml"
    default = load_yaml(repo / "config" / "config.yaml")
    validate(default, schema)
    for overlay in ("tiny.yaml", "paper.yaml"):
        path = repo / "config" / overlay
        if path.exists():
            validate(deep_merge(load_yaml(repo / "config" / "config.yaml"), load_yaml(path)), schema)


def test_schema_errors_list_valid_choices(repo):
    schema = repo / "workflow" / "schemas" / "config.schema.yaml"
    with pytest.raises(ConfigError) as info:
        validate({"seed": 0, "device": "tpu", "colour": 1}, schema)
    message = str(info.value)
    assert "'tpu' is not valid; choose one of ['auto', 'cpu', 'cuda']" in message
    assert "unknown key(s) ['colour']" in message


def test_legacy_resource_keys_move_to_resources():
    from diffusion_regimes.config import migrate_legacy_resources

    config = {"train": {"threads": 4, "runtime_min": 90, "steps": 3}, "ideal": {"threads": 2}}
    notices = migrate_legacy_resources(config)
    assert config["resources"] == {
        "train_ddpm": {"threads": 4, "runtime": 90},
        "regimes_clone": {"threads": 2},
        "regimes_entropy": {"threads": 2},
    }
    assert config["train"] == {"steps": 3} and config["ideal"] == {} and len(notices) == 3


def test_old_section_name_ideal_is_read_as_regimes():
    from diffusion_regimes.config import migrate_legacy_sections

    # the default config (new name) merged with an old overlay: the overlay's keys win, nothing is lost
    config = {"regimes": {"n_pairs": 1000, "n_boot": 400}, "ideal": {"n_pairs": 64}}
    notices = migrate_legacy_sections(config)
    assert config == {"regimes": {"n_pairs": 64, "n_boot": 400}}
    assert len(notices) == 1 and "`ideal:` is now called `regimes:`" in notices[0]


def test_legacy_resource_key_conflict_is_an_error():
    from diffusion_regimes.config import migrate_legacy_resources
    from diffusion_regimes.errors import ConfigError

    config = {"train": {"mem_mb": 4000}, "resources": {"train_ddpm": {"mem_mb": 8000}}}
    with pytest.raises(ConfigError, match="resources.train_ddpm.mem_mb"):
        migrate_legacy_resources(config)


def test_an_overlays_empty_mapping_that_would_merge_into_nothing_is_an_error(tmp_path):
    from diffusion_regimes.config import check_overlays, merge_config_files, noop_empty_mappings

    base = {"regimes": {"sampler_steps": {"exact": 100}, "samplers": {}}, "resources": {}}
    assert noop_empty_mappings(base, {"regimes": {"sampler_steps": {}}}) == ["regimes.sampler_steps"]
    # an empty mapping onto an empty or missing one, or an explicit value, is fine
    assert noop_empty_mappings(base, {"resources": {}, "regimes": {"samplers": {}, "new": {}}}) == []
    assert noop_empty_mappings(base, {"regimes": {"sampler_steps": {"exact": 1000}}}) == []
    with pytest.raises(ConfigError, match=r"over\.yaml: `regimes\.sampler_steps: \{\}` merges into "
                                          r"\{'exact': 100\} and changes nothing"):
        check_overlays(base, [("over.yaml", {"regimes": {"sampler_steps": {}}})])
    # a second overlay is checked against what the first left
    with pytest.raises(ConfigError, match=r"b\.yaml: `train\.by: \{\}`"):
        check_overlays({}, [("a.yaml", {"train": {"by": {"x": 1}}}), ("b.yaml", {"train": {"by": {}}})])
    (tmp_path / "a.yaml").write_text("regimes:\n  sampler_steps: {exact: 100, unet: 100}\n  n: 3\n")
    (tmp_path / "b.yaml").write_text("regimes:\n  sampler_steps: {exact: 1000}\n")
    merged = merge_config_files([tmp_path / "a.yaml", tmp_path / "b.yaml"])
    assert merged == {"regimes": {"sampler_steps": {"exact": 1000, "unet": 100}, "n": 3}}
