"""PreprocessSpec and ModelSpec: validation, unknown keys, metadata round-trip."""

from __future__ import annotations

import json

import pytest

from knucaptcha.charset import DIGITS_UPPER, SIMPLECAPTCHA, Charset
from knucaptcha.errors import ConfigError
from knucaptcha.spec import FORMAT_VERSION, METADATA_PREFIX, ModelSpec, PreprocessSpec, check_keys


def test_defaults_are_the_seeds() -> None:
    spec = PreprocessSpec()
    assert (spec.mode, spec.height, spec.width, spec.binarize, spec.threshold) == ("alpha", 35, 140, True, 0)
    assert ModelSpec(Charset(DIGITS_UPPER)).max_length == 4


@pytest.mark.parametrize(
    "spec",
    [
        ModelSpec(Charset(DIGITS_UPPER)),
        ModelSpec(
            Charset(SIMPLECAPTCHA),
            PreprocessSpec(mode="gray", height=40, width=150, binarize=False, threshold=100),
            max_length=6,
        ),
        ModelSpec(Charset("가나,\"'"), PreprocessSpec(mode="auto"), max_length=1),
    ],
)
def test_metadata_round_trip(spec: ModelSpec) -> None:
    metadata = spec.to_metadata()
    assert all(isinstance(key, str) and isinstance(value, str) for key, value in metadata.items())
    assert all(key.startswith(METADATA_PREFIX) for key in metadata)
    assert metadata[f"{METADATA_PREFIX}format"] == str(FORMAT_VERSION)
    assert ModelSpec.from_metadata(metadata) == spec


def test_metadata_ignores_foreign_keys() -> None:
    metadata = {**ModelSpec(Charset("AB")).to_metadata(), "producer": "someone else"}
    assert ModelSpec.from_metadata(metadata).charset == Charset("AB")


@pytest.mark.parametrize("missing", ["format", "charset", "preprocess", "max_length"])
def test_metadata_missing_a_key(missing: str) -> None:
    metadata = ModelSpec(Charset("AB")).to_metadata()
    del metadata[METADATA_PREFIX + missing]
    with pytest.raises(ConfigError, match=missing):
        ModelSpec.from_metadata(metadata)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("format", "one", "malformed"),
        ("format", str(FORMAT_VERSION + 1), "newer"),
        ("format", "0", "unknown model format 0"),
        ("preprocess", "{not json", "malformed"),
        ("preprocess", json.dumps({"mode": "alpha", "colour": True}), "unknown PreprocessSpec keys: colour"),
        ("preprocess", json.dumps({"mode": "sepia"}), "mode"),
        ("preprocess", json.dumps({"height": "35"}), "height must be an integer"),
        ("preprocess", json.dumps({"binarize": "yes"}), "binarize"),
        ("preprocess", json.dumps(["mode"]), "mapping"),
        ("preprocess", "5", "mapping"),
        ("max_length", "four", "malformed"),
        ("max_length", "0", "max_length"),
    ],
)
def test_metadata_malformed(key: str, value: str, message: str) -> None:
    metadata = {**ModelSpec(Charset("AB")).to_metadata(), METADATA_PREFIX + key: value}
    with pytest.raises(ConfigError, match=message):
        ModelSpec.from_metadata(metadata)


def test_from_dict_rejects_unknown_keys_and_names_the_known_ones() -> None:
    assert PreprocessSpec.from_dict({"height": 40, "width": 150}) == PreprocessSpec(height=40, width=150)
    with pytest.raises(ConfigError, match=r"unknown PreprocessSpec keys: hieght .*known: .*height"):
        PreprocessSpec.from_dict({"hieght": 40})
    assert PreprocessSpec.from_dict(PreprocessSpec(mode="gray").to_dict()) == PreprocessSpec(mode="gray")


def test_check_keys_accepts_known_keys() -> None:
    check_keys(PreprocessSpec, {"mode": "gray"})
    with pytest.raises(ConfigError):
        check_keys(PreprocessSpec, {"mode": "gray", "extra": 1})


@pytest.mark.parametrize(
    "values",
    [
        {"mode": "rgb"},
        {"height": 7},
        {"height": 513},
        {"width": 7},
        {"width": 2049},
        {"threshold": -1},
        {"threshold": 255},
        {"height": 35.0},
        {"width": True},
        {"binarize": 1},
        {"opaque_at": 250, "binarize": False},
        {"opaque_at": 256},
        {"opaque_at": 10, "threshold": 10},
        {"opaque_at": 250.0},
        {"background": "subtract"},
    ],
)
def test_preprocess_validation(values: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        PreprocessSpec(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize("max_length", [0, 65, "4", 4.0])
def test_model_spec_validation(max_length: int) -> None:
    with pytest.raises(ConfigError, match="max_length"):
        ModelSpec(Charset("AB"), max_length=max_length)


def test_specs_are_frozen() -> None:
    with pytest.raises(AttributeError):
        PreprocessSpec().height = 40  # type: ignore[misc]


def test_opaque_at_travels_in_the_metadata_and_stays_out_of_it_when_unset() -> None:
    three = ModelSpec(Charset("AB"), PreprocessSpec(opaque_at=250))
    assert ModelSpec.from_metadata(three.to_metadata()) == three
    assert "opaque_at" not in ModelSpec(Charset("AB")).to_metadata()["knucaptcha.preprocess"]  # older readers


def test_a_flattened_background_travels_in_the_metadata_and_a_kept_one_stays_out_of_it() -> None:
    flat = ModelSpec(Charset("AB"), PreprocessSpec(mode="gray", binarize=False, background="flatten"))
    assert ModelSpec.from_metadata(flat.to_metadata()) == flat
    assert "background" not in ModelSpec(Charset("AB")).to_metadata()["knucaptcha.preprocess"]  # older readers
