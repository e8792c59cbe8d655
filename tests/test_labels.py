"""Labelled folders: the naming rules, the manifest, and the seeded split."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from knucaptcha.errors import ConfigError, LabelError, MissingFileError
from knucaptcha.labels import (
    IMAGE_EXTENSIONS,
    MANIFEST_NAME,
    LabelledImage,
    label_from_name,
    read_manifest,
    scan_folder,
    split,
    survey_folder,
    write_manifest,
)


def touch(folder: Path, *names: str) -> None:
    for name in names:
        (folder / name).write_bytes(b"")


@pytest.mark.parametrize(
    ("name", "label"),
    [
        ("AB12.png", "AB12"),
        ("AB12_7.png", "AB12"),
        ("AB12_7_extra.jpeg", "AB12"),
        ("ab12.PNG", "ab12"),
        ("dir/XY34.gif", "XY34"),
        ("_7.png", None),
        ("AB12 copy.png", None),
        ("AB12 (1).png", None),
    ],
)
def test_label_from_name(name: str, label: str | None) -> None:
    assert label_from_name(name) == label


def test_scan_folder_reads_labels_from_names_sorted_by_path(tmp_path: Path) -> None:
    touch(tmp_path, "ZZ99.png", "AB12_7.png", "AB12.jpg", "cd34.webp", "EF56.BMP", "GH78.gif", "IJ90.jpeg")
    touch(tmp_path, "notes.txt", "._AB12.png", "_7.png")
    (tmp_path / "sub.png").mkdir()  # a folder with an image-like name is not an image

    items = scan_folder(tmp_path)

    assert items == sorted(items)
    assert [(item.path.name, item.label) for item in items] == [
        ("AB12.jpg", "AB12"),
        ("AB12_7.png", "AB12"),
        ("EF56.BMP", "EF56"),
        ("GH78.gif", "GH78"),
        ("IJ90.jpeg", "IJ90"),
        ("ZZ99.png", "ZZ99"),
        ("cd34.webp", "cd34"),
    ]
    assert all(item.path.parent == tmp_path for item in items)


def test_every_image_extension_is_scanned(tmp_path: Path) -> None:
    for index, extension in enumerate(IMAGE_EXTENSIONS):
        touch(tmp_path, f"A{index}{extension}")
    assert len(scan_folder(tmp_path)) == len(IMAGE_EXTENSIONS)


@pytest.mark.parametrize(("case", "expected"), [("keep", "aB1"), ("upper", "AB1"), ("lower", "ab1")])
def test_case_folding(tmp_path: Path, case: str, expected: str) -> None:
    touch(tmp_path, "aB1.png")
    assert [item.label for item in scan_folder(tmp_path, case=case)] == [expected]


def test_unknown_case_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="case"):
        scan_folder(tmp_path, case="title")


def test_missing_folder_and_file_instead_of_folder(tmp_path: Path) -> None:
    with pytest.raises(MissingFileError, match="no such folder"):
        scan_folder(tmp_path / "absent")
    touch(tmp_path, "AB12.png")
    with pytest.raises(MissingFileError, match="not a folder"):
        scan_folder(tmp_path / "AB12.png")


def test_survey_reports_unlabelled_files(tmp_path: Path) -> None:
    touch(tmp_path, "AB12.png", "_7.png", "AB12 copy.png")
    scan = survey_folder(tmp_path)
    assert [item.label for item in scan.items] == ["AB12"]
    assert [path.name for path in scan.unlabelled] == ["AB12 copy.png", "_7.png"]
    assert scan.missing == ()


def test_manifest_overrides_names_and_leaves_others_unlabelled(tmp_path: Path) -> None:
    touch(tmp_path, "0001.png", "0002.png", "QQ11.png")
    (tmp_path / MANIFEST_NAME).write_text("file,label,source\n0002.png,xy12,server\n0001.png,AB34,server\n")

    scan = survey_folder(tmp_path, case="upper")

    assert [(item.path.name, item.label) for item in scan.items] == [("0001.png", "AB34"), ("0002.png", "XY12")]
    assert [path.name for path in scan.unlabelled] == ["QQ11.png"]


def test_manifest_naming_missing_files(tmp_path: Path) -> None:
    touch(tmp_path, "a.png")
    write_manifest(tmp_path / MANIFEST_NAME, {"a.png": "AB12", "gone.png": "CD34"})
    assert survey_folder(tmp_path).missing == ("gone.png",)
    with pytest.raises(LabelError, match="gone.png"):
        scan_folder(tmp_path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "header"),
        ("name,label\na.png,AB\n", "header"),
        ("file,text\na.png,AB\n", "header"),
        ("label,file\nAB\n", "missing"),
        ("file,label\na.png,\n", "empty"),
        ("file,label\na.png, AB\n", "whitespace"),
        ("file,label\na.png,AB\na.png,CD\n", "twice"),
        ("file,label\n/etc/passwd,AB\n", "inside the folder"),
        ("file,label\n../a.png,AB\n", "inside the folder"),
    ],
)
def test_malformed_manifests(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / MANIFEST_NAME
    path.write_text(text)
    with pytest.raises(LabelError, match=message):
        read_manifest(path)


def test_manifest_errors_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / MANIFEST_NAME
    path.write_text("file,label\na.png,AB\nb.png,\n")
    with pytest.raises(LabelError, match="line 3"):
        read_manifest(path)


def test_manifest_not_utf8_and_missing(tmp_path: Path) -> None:
    path = tmp_path / MANIFEST_NAME
    path.write_bytes(b"file,label\n\xff\xfe.png,AB\n")
    with pytest.raises(LabelError, match="UTF-8"):
        read_manifest(path)
    with pytest.raises(MissingFileError):
        read_manifest(tmp_path / "absent.csv")


def test_manifest_with_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / MANIFEST_NAME
    path.write_bytes("file,label\r\na.png,AB\r\n".encode("utf-8-sig"))
    assert read_manifest(path) == {"a.png": "AB"}


_names = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=12).filter(
    lambda name: name not in (".", "..") and "/" not in name and "\\" not in name
)
_labels = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp")), min_size=1, max_size=8).filter(
    lambda label: not any(symbol.isspace() for symbol in label)
)


@given(mapping=st.dictionaries(_names, _labels, max_size=8))
def test_manifest_round_trip(tmp_path_factory: pytest.TempPathFactory, mapping: dict[str, str]) -> None:
    folder = tmp_path_factory.mktemp("manifest")
    write_manifest(folder / MANIFEST_NAME, mapping)
    assert read_manifest(folder / MANIFEST_NAME) == mapping
    assert os.listdir(folder) == [MANIFEST_NAME]  # no temporary file left behind


def test_write_manifest_replaces_atomically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / MANIFEST_NAME
    write_manifest(path, {"a.png": "AB"})
    assert path.read_text() == "file,label\na.png,AB\n"

    def crash(source: str, target: str) -> None:
        raise OSError("disk vanished")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk vanished"):
        write_manifest(path, {"b.png": "CD"})
    assert read_manifest(path) == {"a.png": "AB"}
    assert os.listdir(tmp_path) == [MANIFEST_NAME]


def test_write_manifest_rejects_bad_entries_without_writing(tmp_path: Path) -> None:
    path = tmp_path / MANIFEST_NAME
    write_manifest(path, {"a.png": "AB"})
    for bad in ({"b.png": ""}, {"b.png": "A B"}, {"": "AB"}, {"../b.png": "AB"}):
        with pytest.raises(LabelError):
            write_manifest(path, bad)
    assert read_manifest(path) == {"a.png": "AB"}


@given(items=st.lists(st.integers(), max_size=60), fraction=st.floats(0.01, 0.99), seed=st.integers(0, 2**32))
def test_split_partitions_exactly_and_reproducibly(items: list[int], fraction: float, seed: int) -> None:
    train, valid = split(items, fraction, seed)
    assert Counter(train) + Counter(valid) == Counter(items)
    assert split(items, fraction, seed) == (train, valid)
    assert split(list(reversed(items)), fraction, seed) == (train, valid)
    if len(items) >= 2:
        assert train and valid
    else:
        assert valid == []


def test_split_default_is_ninety_ten_and_depends_on_seed() -> None:
    items = [LabelledImage(Path(f"{index:04d}.png"), "AB12") for index in range(100)]
    train, valid = split(items)
    assert (len(train), len(valid)) == (90, 10)
    assert split(items, seed=1)[1] != valid


def test_split_keeps_unorderable_items() -> None:
    items = [{"id": index} for index in range(10)]
    train, valid = split(items, 0.3, seed=5)
    assert len(valid) == 3
    assert sorted(item["id"] for item in train + valid) == list(range(10))
    assert split(items, 0.3, seed=5) == (train, valid)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
def test_split_rejects_fractions_outside_zero_one(fraction: float) -> None:
    with pytest.raises(ConfigError):
        split([1, 2, 3], fraction)
