"""Configuration: schema validation with readable errors, and frozen typed sections.

The workflow validates the whole YAML config against ``workflow/schemas/config.schema.yaml`` at parse
time (before any job runs).  Each experiment declares the section it needs as a frozen dataclass;
:func:`build` turns a plain mapping into that dataclass, rejecting unknown keys and listing the valid ones
(docs/architecture.md principles 3 and 9).
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

from diffusion_regimes.errors import ConfigError

T = TypeVar("T")

__all__ = ["ConfigError", "build", "check_overlays", "deep_merge", "from_json", "load_yaml",
           "merge_config_files", "noop_empty_mappings", "to_dict", "validate"]


def load_yaml(path: str | Path, *, allow_empty: bool = True) -> dict[str, Any]:
    """Read a YAML mapping, with an error naming the file (and line) when it is missing or malformed."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    with path.open() as fh:
        try:
            data = yaml.safe_load(fh)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"{path}, line {mark.line + 1}, column {mark.column + 1}" if mark else str(path)
            problem = getattr(exc, "problem", None) or str(exc)
            raise ConfigError(f"{where}: not valid YAML ({problem}); check the indentation and brackets "
                              "there (spaces only, no tabs)") from exc
    if data is None:
        if not allow_empty:
            raise ConfigError(f"{path} is empty; it must hold the configuration mapping "
                              "(see config/README.md)")
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping, got {type(data).__name__}")
    return data


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Recursively merge ``override`` into a copy of ``base`` (mappings merge, everything else replaces)."""
    merged: dict[str, Any] = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def noop_empty_mappings(base: Mapping[str, Any], overlay: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys where ``overlay`` holds an empty mapping and ``base`` a non-empty one.

    Merged (:func:`deep_merge`, as Snakemake merges ``--configfile`` overlays), ``{}`` changes nothing: the
    base's entries stay.  Written in an overlay it almost always means "none of these" or "the defaults",
    which it does not do; :func:`check_overlays` reports it.
    """
    found = []
    for key, value in overlay.items():
        below = base.get(key) if isinstance(base, Mapping) else None
        if isinstance(value, Mapping) and isinstance(below, Mapping):
            if not value and below:
                found.append(f"{prefix}{key}")
            else:
                found += noop_empty_mappings(below, value, f"{prefix}{key}.")
    return found


def check_overlays(base: Mapping[str, Any], overlays: Sequence[tuple[str, Mapping[str, Any]]]) -> None:
    """Raise :class:`ConfigError` when an overlay's empty mapping would merge into a non-empty one of
    ``base`` (or of an earlier overlay) and change nothing.  ``overlays``: ``(name, mapping)`` in merge
    order."""
    problems = []
    merged: Mapping[str, Any] = base
    for name, overlay in overlays:
        for key in noop_empty_mappings(merged, overlay):
            problems.append(f"{name}: `{key}: {{}}` merges into {_lookup(merged, key)!r} and changes nothing "
                            "(overlays merge mapping into mapping); write the value of every entry you mean, "
                            f"e.g. `{key}: {_example(_lookup(merged, key))}`")
        merged = deep_merge(merged, overlay)
    if problems:
        lines = "\n  - ".join(problems)
        raise ConfigError(f"invalid configuration overlay ({len(problems)} problem(s)):\n  - {lines}")


def _lookup(config: Mapping[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        config = config[part]
    return config


def _example(mapping: Mapping[str, Any]) -> str:
    return "{" + ", ".join(f"{key}: ..." for key in mapping) + "}"


def merge_config_files(paths: Sequence[str | Path]) -> dict[str, Any]:
    """The configuration of ``snakemake --configfile B [C ...]``: ``paths[0]`` (the workflow's own
    ``config/config.yaml``) with the overlays merged on in order, exactly as Snakemake merges them
    (:func:`deep_merge`), after :func:`check_overlays`."""
    if not paths:
        raise ConfigError("no config file given")
    base = load_yaml(paths[0], allow_empty=False)
    overlays = [(str(path), load_yaml(path)) for path in paths[1:]]
    check_overlays(base, overlays)
    merged = base
    for _, overlay in overlays:
        merged = deep_merge(merged, overlay)
    return merged


def _format_error(error: Any) -> str:
    location = "/".join(str(p) for p in error.absolute_path) or "<top level>"
    validator = error.validator
    if validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed))
        return f"{location}: unknown key(s) {extra}; valid keys are {allowed}"
    if validator == "enum":
        return f"{location}: {error.instance!r} is not valid; choose one of {error.validator_value}"
    if validator == "required":
        return f"{location}: {error.message}"
    if validator == "type" and isinstance(error.instance, str) and "number" in str(error.validator_value):
        try:
            float(error.instance)
        except ValueError:
            pass
        else:
            # YAML 1.1 reads 1e-3 (no dot in the mantissa) as the string "1e-3".
            return (f"{location}: {error.instance!r} is a string, not a number; write it with a dot and a "
                    f"signed exponent, e.g. 1.0e-3, or as a decimal, e.g. 0.001")
    return f"{location}: {error.message}"


def validate(config: Mapping[str, Any], schema_path: str | Path, *, set_defaults: bool = True) -> None:
    """Validate ``config`` against a JSON-schema file (YAML allowed); ``$ref`` resolve beside it.

    Raises :class:`ConfigError` listing *every* violation with its key path and the valid choices.
    With ``set_defaults`` the schema's ``default`` values are filled into ``config`` in place.
    """
    import jsonschema
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    schema_path = Path(schema_path).resolve()
    schema = load_yaml(schema_path)

    def retrieve(uri: str) -> Resource:
        target = Path(uri.removeprefix("file://"))
        if not target.is_absolute():
            target = schema_path.parent / target
        contents = load_yaml(target)
        # A `$schema` inside a referenced file makes jsonschema validate that subtree with its stock class
        # for the dialect (Validator.evolve -> validator_for), which fills no defaults; every schema file
        # here is draft 2020-12, so the key is dropped and the referenced sections get their defaults too.
        contents.pop("$schema", None)
        return Resource.from_contents(contents, default_specification=DRAFT202012)

    schema.setdefault("$id", schema_path.as_uri())
    registry: Registry = Registry(retrieve=retrieve)  # type: ignore[call-arg]
    base = jsonschema.Draft202012Validator
    if set_defaults:

        def fill_defaults(validator, properties, instance, schema):  # noqa: ANN001
            if isinstance(instance, dict):
                for name, sub in properties.items():
                    if isinstance(sub, dict) and "default" in sub:
                        instance.setdefault(name, sub["default"])
            yield from base.VALIDATORS["properties"](validator, properties, instance, schema)

        cls = jsonschema.validators.extend(base, {"properties": fill_defaults})
    else:
        cls = base
    validator = cls(schema, registry=registry)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        lines = "\n  - ".join(_format_error(e) for e in errors)
        raise ConfigError(f"invalid configuration ({len(errors)} problem(s)):\n  - {lines}")


def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return build(tp, value, where=where)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        non_none = [a for a in args if a is not type(None)]
        last: Exception | None = None
        for arg in non_none:
            try:
                return _coerce(arg, value, where)
            except (ConfigError, TypeError, ValueError) as exc:
                last = exc
        raise ConfigError(f"{where}: {value!r} does not match {tp}") from last
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where}: {value!r} is not valid; choose one of {list(args)}")
        return value
    if origin in (tuple, list) or tp in (tuple, list):
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        item = args[0] if args else Any
        return tuple(_coerce(item, v, f"{where}[{i}]") for i, v in enumerate(value))
    if origin is dict or tp is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    return value


def build(cls: type[T], mapping: Mapping[str, Any], *, where: str = "config") -> T:
    """Build the frozen dataclass ``cls`` from ``mapping``.

    Unknown keys raise :class:`ConfigError` listing the valid ones; missing keys fall back to the
    dataclass defaults (a missing key without default is an error); list values become tuples so the
    result is hashable and immutable.
    """
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls} is not a dataclass")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(mapping) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; valid keys are {sorted(fields)}")
    kwargs: dict[str, Any] = {}
    for name, field in fields.items():
        if name in mapping:
            kwargs[name] = _coerce(hints[name], mapping[name], f"{where}.{name}")
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{where}: missing required key {name!r}")
    return cls(**kwargs)


def to_dict(obj: Any) -> Any:
    """Plain-data (JSON-ready) view of a dataclass config (tuples become lists)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, list | tuple):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def from_json(cls: type[T], text: str, *, where: str = "config") -> T:
    """Parse the JSON ``--spec`` a workflow rule passes to the CLI into ``cls``."""
    try:
        mapping = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{where}: --spec is not valid JSON ({exc})") from exc
    return build(cls, mapping, where=where)


# Keys that once sized jobs inside a stage's section, and where they live now: (section, key) ->
# [(rule, resources key)].  ideal.threads (the old name of the regimes section) sized both sweep rules.
LEGACY_RESOURCE_KEYS: dict[tuple[str, str], list[tuple[str, str]]] = {
    ("train", "threads"): [("train_ddpm", "threads")],
    ("train", "mem_mb"): [("train_ddpm", "mem_mb")],
    ("train", "runtime_min"): [("train_ddpm", "runtime")],
    ("ideal", "threads"): [("regimes_clone", "threads"), ("regimes_entropy", "threads")],
}


def migrate_legacy_resources(config: dict[str, Any]) -> list[str]:
    """Move the old per-section resource keys into the top-level ``resources:`` section, in place.

    Runs before schema validation (so it sees what the user wrote, not filled-in defaults).  A legacy key
    keeps working: its value becomes the rule's resource unless ``resources.<rule>.<key>`` is also set to
    a different value, which is a :class:`ConfigError` (two answers to one question).  Returns one notice
    per moved key, for the caller to print.
    """
    notices = []
    resources = config.setdefault("resources", {}) or {}
    config["resources"] = resources
    for (section, key), targets in LEGACY_RESOURCE_KEYS.items():
        block = config.get(section)
        if not isinstance(block, dict) or key not in block:
            continue
        value = block.pop(key)
        for rule, new_key in targets:
            entry = resources.setdefault(rule, {})
            if new_key in entry and entry[new_key] != value:
                raise ConfigError(
                    f"{section}.{key} = {value!r} and resources.{rule}.{new_key} = {entry[new_key]!r} "
                    f"disagree; delete {section}.{key} (it moved to resources.{rule}.{new_key}, "
                    "see config/README.md)"
                )
            entry[new_key] = value
        moved = ", ".join(f"resources.{rule}.{new_key}" for rule, new_key in targets)
        notices.append(f"config: {section}.{key} is deprecated; its value {value!r} was used as {moved}")
    return notices


# Sections that were renamed: old name -> new name.  `ideal:` held the real-data sweeps, now `regimes:` (one
# name for the stage's rule file, config section, command module, package module and results folder).
LEGACY_SECTIONS: dict[str, str] = {"ideal": "regimes"}


def migrate_legacy_sections(config: dict[str, Any]) -> list[str]:
    """Fold renamed sections into their new name, in place; returns one notice per folded section.

    Runs before schema validation.  Snakemake merges the default config (new names) with a user's overlay
    (perhaps old names) before this sees them, so the old section's keys are laid over the new one: the
    overlay wins, as it would have under the old name.
    """
    notices = []
    for old, new in LEGACY_SECTIONS.items():
        if old not in config:
            continue
        block = config.pop(old)
        if not isinstance(block, Mapping):
            raise ConfigError(f"{old}: must be a mapping (it is the old name of `{new}:`), got "
                              f"{type(block).__name__}")
        config[new] = deep_merge(config.get(new) or {}, block)
        notices.append(f"config: section `{old}:` is now called `{new}:`; its keys were used as {new}.*")
    return notices
