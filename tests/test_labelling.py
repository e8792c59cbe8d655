"""The labelling workflow: queue order, the three write modes, undo, label checks, prelabels, the /label API."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image
from typer.testing import CliRunner

from knucaptcha.cli import app as cli
from knucaptcha.ctc import ReadOptions
from knucaptcha.errors import ConfigError, LabelError, MissingFileError
from knucaptcha.labelling import FORBIDDEN_IN_LABELS, LabellingSession, check_label
from knucaptcha.generator import encode_png
from knucaptcha.labels import label_from_name, read_manifest, scan_folder
from knucaptcha.prelabels import PRELABELS_NAME, Guess, read_prelabels, write_prelabels
from knucaptcha.web.errors import install_error_handlers
from knucaptcha.web.labelling import labelling_router


def _png(seed: int) -> bytes:
    """A distinct small transparent PNG per seed."""
    image = Image.new("RGBA", (140, 35), (0, 0, 0, 0))
    image.putpixel((seed % 140, seed % 35), (0, 0, 0, 255))
    return encode_png(image)


def make_folder(root: Path, unlabelled: dict[str, float], named: tuple[str, ...] = ()) -> Path:
    """A folder of unlabelled ``_*.png`` images with prelabel guesses of the given confidences."""
    root.mkdir(parents=True, exist_ok=True)
    for index, name in enumerate([*unlabelled, *named]):
        (root / name).write_bytes(_png(index))
    write_prelabels(root / PRELABELS_NAME, {name: Guess(f"G{i}", c) for i, (name, c) in enumerate(unlabelled.items())})
    return root


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file's bytes but the hidden ones (the lock file labelling writes hold)."""
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir()) if not path.name.startswith(".")}


def images(files: dict[str, bytes]) -> dict[str, bytes]:
    """The images of a :func:`snapshot`."""
    return {name: data for name, data in files.items() if name.endswith(".png")}


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return make_folder(tmp_path / "f", {"_a.png": 0.9, "_b.png": 0.1, "_c.png": 0.5}, named=("OLD1_1.png",))


def test_queue_is_least_confident_first_and_counts_progress(folder: Path) -> None:
    session = LabellingSession.open(folder)
    assert session.current().file == "_b.png"
    assert session.current().guess == Guess("G1", 0.1)
    progress = session.progress()
    assert (progress.labelled, progress.total, progress.done, progress.skipped) == (1, 4, 0, 0)


def test_csv_mode_seeds_the_manifest_with_named_images_and_keeps_names(folder: Path) -> None:
    session = LabellingSession.open(folder, write="csv")
    session.label("_b.png", "AB12")
    assert read_manifest(folder / "labels.csv") == {"OLD1_1.png": "OLD1", "_b.png": "AB12"}
    assert (folder / "_b.png").exists()
    assert {item.label for item in scan_folder(folder)} == {"OLD1", "AB12"}
    assert session.current().file == "_c.png"
    assert session.progress().labelled == 2


def test_rename_mode_never_overwrites_an_existing_label_file(folder: Path) -> None:
    (folder / "ZZ99_1.png").write_bytes(b"precious")
    session = LabellingSession.open(folder, write="rename")
    step = session.label("_b.png", "ZZ99")
    assert step.renamed == "ZZ99_2.png"
    assert (folder / "ZZ99_1.png").read_bytes() == b"precious"
    assert not (folder / "_b.png").exists() and not (folder / "labels.csv").exists()


def test_rename_mode_also_lists_the_new_name_when_a_manifest_exists(folder: Path) -> None:
    (folder / "labels.csv").write_text("file,label,font\nOLD1_1.png,OLD1,DejaVu\n", encoding="utf-8")
    session = LabellingSession.open(folder, write="rename")
    session.label("_b.png", "QW12")
    assert (folder / "labels.csv").read_text(encoding="utf-8") == (
        "file,label,font\nOLD1_1.png,OLD1,DejaVu\nQW12_1.png,QW12,\n"
    )


@pytest.mark.parametrize("write", ["csv", "rename", "both"])
@pytest.mark.parametrize("manifest", [None, "file,label\nOLD1_1.png,OLD1"])
def test_undo_restores_names_and_takes_its_rows_out_again(folder: Path, write: str, manifest: str | None) -> None:
    if manifest is not None:
        (folder / "labels.csv").write_text(manifest, encoding="utf-8")
    before = snapshot(folder)
    session = LabellingSession.open(folder, write=write)
    after_open = snapshot(folder)  # the prelabel cache is complete, so opening writes nothing
    assert after_open == before
    session.label("_b.png", "AB12")
    session.skip("_c.png")
    session.label("_a.png", "CD34")
    assert snapshot(folder) != before
    for _ in range(3):
        session.undo()
    assert images(snapshot(folder)) == images(before)
    if manifest is not None or write != "rename":  # a manifest the labels created stays, listing the named images
        assert read_manifest(folder / "labels.csv") == {"OLD1_1.png": "OLD1"}
    else:
        assert not (folder / "labels.csv").exists()
    assert session.current().file == "_b.png"
    assert session.progress().done == 0
    with pytest.raises(LabelError, match="nothing to undo"):
        session.undo()


def test_undo_refuses_when_the_old_name_was_taken_and_loses_nothing(folder: Path) -> None:
    session = LabellingSession.open(folder, write="rename")
    session.label("_b.png", "AB12")
    (folder / "_b.png").write_bytes(b"newcomer")
    with pytest.raises(LabelError, match="exists again"):
        session.undo()
    assert (folder / "_b.png").read_bytes() == b"newcomer"
    assert (folder / "AB12_1.png").exists()


def test_undo_keeps_rows_added_by_hand_meanwhile(folder: Path) -> None:
    (folder / "labels.csv").write_text("file,label,note\nOLD1_1.png,OLD1,\"two\nlines\"\n", encoding="utf-8")
    session = LabellingSession.open(folder, write="csv")
    session.label("_b.png", "AB12")
    with (folder / "labels.csv").open("a", encoding="utf-8") as manifest:
        manifest.write("_c.png,HAND,by hand\n")
    session.undo()
    assert (folder / "labels.csv").read_text(encoding="utf-8") == (
        'file,label,note\nOLD1_1.png,OLD1,"two\nlines"\n_c.png,HAND,by hand\n'
    )


def test_undo_in_one_session_keeps_the_labels_of_another_on_the_same_folder(folder: Path) -> None:
    first, second = LabellingSession.open(folder), LabellingSession.open(folder)
    first.label("_b.png", "AB12")  # creates labels.csv
    second.label("_c.png", "CD34")
    first.undo()
    assert read_manifest(folder / "labels.csv") == {"OLD1_1.png": "OLD1", "_c.png": "CD34"}


@pytest.mark.parametrize("write", ["csv", "rename"])
def test_an_image_another_session_labelled_meanwhile_is_refused_not_labelled_twice(folder: Path, write: str) -> None:
    first, second = LabellingSession.open(folder, write=write), LabellingSession.open(folder, write="csv")
    first.label("_b.png", "AB12")
    with pytest.raises(MissingFileError, match="labelled meanwhile|no longer"):
        second.label("_b.png", "XY98")
    assert second.current().file == "_c.png"
    second.label("_c.png", "CD34")
    labels = read_manifest(folder / "labels.csv")  # no file listed twice
    assert labels["_c.png"] == "CD34" and "XY98" not in labels.values()


def _label_all(folder: str, files: list[str], write: str) -> None:
    """Label ``files`` in a session of its own (run in a separate process)."""
    session = LabellingSession.open(folder, write=write)
    for file in files:
        session.label(file, file.strip("_").removesuffix(".png").upper())


@pytest.mark.timeout(120)
@pytest.mark.parametrize("write", ["csv", "both"])
def test_two_processes_labelling_one_folder_at_once_lose_no_label(tmp_path: Path, write: str) -> None:
    import multiprocessing

    folder = make_folder(tmp_path / "f", {f"_x{index:02d}.png": 0.5 for index in range(36)}, named=("OLD1_1.png",))
    files = sorted(path.name for path in folder.glob("_x*.png"))
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_label_all, args=(str(folder), files[half::2], write)) for half in (0, 1)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(100)
        assert worker.exitcode == 0
    labels = read_manifest(folder / "labels.csv")
    assert sorted(labels.values()) == sorted(["OLD1", *(name.strip("_").removesuffix(".png").upper() for name in files)])
    assert all((folder / name).is_file() for name in labels)


def test_two_sessions_driven_concurrently_through_the_api_write_every_label(folder: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    many = make_folder(folder.parent / "many", {f"_y{index:02d}.png": 0.5 for index in range(36)})
    clients = []
    for _ in range(2):
        app = FastAPI()
        install_error_handlers(app, max_upload_bytes=1_000_000)
        app.include_router(labelling_router(LabellingSession.open(many, write="csv")))
        clients.append(TestClient(app))
    files = sorted(path.name for path in many.glob("_y*.png"))

    def label(index: int) -> int:
        body = {"file": files[index], "label": f"L{index}"}
        return clients[index % 2].post("/label/api/label", json=body).status_code

    with ThreadPoolExecutor(8) as pool:
        assert set(pool.map(label, range(len(files)))) == {200}
    assert read_manifest(many / "labels.csv") == {file: f"L{index}" for index, file in enumerate(files)}


def test_skip_moves_to_the_back_and_cycles(folder: Path) -> None:
    session = LabellingSession.open(folder)
    order = []
    for _ in range(4):
        order.append(session.current().file)
        session.skip(order[-1])
    assert order == ["_b.png", "_c.png", "_a.png", "_b.png"]
    assert session.progress().skipped == 3
    session.undo()
    assert session.current().file == "_b.png"


def test_labelling_an_unqueued_or_vanished_file_is_refused(folder: Path) -> None:
    session = LabellingSession.open(folder)
    with pytest.raises(MissingFileError):
        session.label("OLD1_1.png", "X1")
    with pytest.raises(MissingFileError):
        session.image_path("../etc/passwd")
    (folder / "_b.png").unlink()
    with pytest.raises(MissingFileError, match="no longer"):
        session.label("_b.png", "AB12")
    assert session.progress().total == 3


@pytest.mark.parametrize(
    "label", ["", " AB", "A B", "a/b", "a\\b", "AB_1", "..", "A\tB", "A\x00", "X" * 65, "\U0001f600" * 60]
)
def test_bad_labels_are_refused_before_anything_changes(folder: Path, label: str) -> None:
    before = snapshot(folder)
    session = LabellingSession.open(folder, write="both")
    with pytest.raises(LabelError):
        session.label("_b.png", label)
    assert snapshot(folder) == before


@given(st.text(min_size=1, max_size=70))
def test_accepted_labels_round_trip_through_names_and_manifests(label: str) -> None:
    try:
        check_label(label)
    except LabelError:
        return
    assert not FORBIDDEN_IN_LABELS & set(label)
    assert label_from_name(f"{label}_1.png") == label


def test_unknown_write_mode_is_a_config_error(folder: Path) -> None:
    with pytest.raises(ConfigError):
        LabellingSession.open(folder, write="move")


def test_a_solver_fills_missing_guesses_once(tmp_path: Path, linear_model: Path) -> None:
    from knucaptcha.inference import Solver

    folder = make_folder(tmp_path / "f", {})
    for name in ("_x.png", "_y.png"):
        (folder / name).write_bytes(_png(len(name)))
    (folder / PRELABELS_NAME).unlink()
    solver = Solver.load(linear_model)
    session = LabellingSession.open(folder, solver=solver)
    cached = read_prelabels(folder / PRELABELS_NAME)
    assert set(cached) == {"_x.png", "_y.png"}
    assert cached["_x.png"].text == solver.solve(folder / "_x.png").text
    assert session.current().guess == cached[session.current().file]
    mtime = (folder / PRELABELS_NAME).stat().st_mtime_ns
    LabellingSession.open(folder, solver=solver)
    assert (folder / PRELABELS_NAME).stat().st_mtime_ns == mtime


def test_guesses_of_another_model_or_other_options_are_made_again(
    tmp_path: Path, linear_model: Path, other_linear_model: Path
) -> None:
    from knucaptcha.inference import Solver

    folder = make_folder(tmp_path / "f", {})
    names = ("_x.png", "_y.png", "_z.png")
    for name in names:
        (folder / name).write_bytes(_png(len(name) + ord(name[1])))
    # A prelabels file from before the reader column: its guesses' reader is unknown.
    (folder / PRELABELS_NAME).write_text("file,guess,confidence\n_x.png,OLD,0.5\n", encoding="utf-8")
    assert read_prelabels(folder / PRELABELS_NAME)["_x.png"] == Guess("OLD", 0.5, "")
    first = Solver.load(linear_model)
    tuned = Solver.load(other_linear_model)  # "after fine-tuning"

    def cached_texts() -> dict[str, str]:
        return {name: guess.text for name, guess in read_prelabels(folder / PRELABELS_NAME).items()}

    LabellingSession.open(folder, solver=first)
    assert cached_texts() == {name: first.solve(folder / name).text for name in names}
    LabellingSession.open(folder, solver=tuned)
    assert cached_texts() == {name: tuned.solve(folder / name).text for name in names} != {
        name: first.solve(folder / name).text for name in names
    }
    mtime = (folder / PRELABELS_NAME).stat().st_mtime_ns
    copy = tmp_path / "copy.onnx"
    copy.write_bytes(other_linear_model.read_bytes())
    LabellingSession.open(folder, solver=Solver.load(copy))  # the same model under another name: nothing to redo
    assert (folder / PRELABELS_NAME).stat().st_mtime_ns == mtime
    LabellingSession.open(folder, solver=tuned, options=ReadOptions(length=2))
    assert cached_texts() == {name: tuned.solve(folder / name, length=2).text for name in names}
    assert {guess.reader for guess in read_prelabels(folder / PRELABELS_NAME).values()} == {
        f"sha256:{tuned.digest[:16]} length=2"
    }


def test_guesses_can_be_restricted_to_a_sites_alphabet(tmp_path: Path, linear_model: Path) -> None:
    from knucaptcha.inference import Solver

    folder = make_folder(tmp_path / "f", {})
    for name in ("_x.png", "_y.png", "_z.png"):
        (folder / name).write_bytes(_png(len(name) + ord(name[1])))
    (folder / PRELABELS_NAME).unlink()
    solver = Solver.load(linear_model)
    LabellingSession.open(folder, solver=solver, options=ReadOptions(symbols="0123456789"))
    cached = read_prelabels(folder / PRELABELS_NAME)
    assert {name: guess.text for name, guess in cached.items()} == {
        name: solver.solve(folder / name, symbols="0123456789").text for name in ("_x.png", "_y.png", "_z.png")
    }
    assert all(set(guess.text) <= set("0123456789") for guess in cached.values())


def test_the_label_service_guesses_with_its_alphabet_and_refuses_one_the_model_cannot_read(
    tmp_path: Path, linear_model: Path
) -> None:
    from knucaptcha.web.app import create_app
    from knucaptcha.web.settings import ServeSettings

    folder = make_folder(tmp_path / "f", {})
    (folder / "_x.png").write_bytes(_png(7))
    (folder / PRELABELS_NAME).unlink()
    settings = ServeSettings(models=(("linear", str(linear_model)),), captcha_seed=0, label_dir=folder)
    with TestClient(create_app(replace(settings, site=ReadOptions(symbols="0123456789")))) as client:
        guess = client.get("/label/api/state").json()["current"]["guess"]
    assert set(guess) <= set("0123456789")
    with pytest.raises(ConfigError, match="cannot read 'a'"):  # refused though every image is guessed already
        create_app(replace(settings, site=ReadOptions(symbols="a")))


def test_guesses_can_be_told_the_sites_length_through_the_service(tmp_path: Path, linear_model: Path) -> None:
    from knucaptcha.inference import Solver
    from knucaptcha.web.app import create_app
    from knucaptcha.web.settings import ServeSettings

    folder = make_folder(tmp_path / "f", {})
    names = ("_x.png", "_y.png", "_z.png")
    for name in names:
        (folder / name).write_bytes(_png(len(name) + ord(name[1])))
    (folder / PRELABELS_NAME).unlink()
    solver = Solver.load(linear_model)
    assert any(len(solver.solve(folder / name).text) != 2 for name in names)  # untold, another length somewhere
    settings = ServeSettings(models=(("linear", str(linear_model)),), captcha_seed=0, label_dir=folder)
    with TestClient(create_app(replace(settings, site=ReadOptions(length=2)))):
        pass
    cached = read_prelabels(folder / PRELABELS_NAME)
    assert {name: guess.text for name, guess in cached.items()} == {
        name: solver.solve(folder / name, length=2).text for name in names
    }
    assert {len(guess.text) for guess in cached.values()} == {2}
    with pytest.raises(ConfigError, match="reads 1 to 4 symbols"):  # refused though every image is guessed already
        create_app(replace(settings, site=ReadOptions(length=9)))


def test_malformed_prelabels_are_a_label_error(folder: Path) -> None:
    (folder / PRELABELS_NAME).write_text("file,guess,confidence\n_a.png,AB,2.5\n", encoding="utf-8")
    with pytest.raises(LabelError, match="between 0 and 1"):
        LabellingSession.open(folder)


@pytest.fixture
def client(folder: Path) -> TestClient:
    """The /label routes alone, over a rename-and-csv session, with the service's error handlers."""
    app = FastAPI()
    install_error_handlers(app, max_upload_bytes=1_000_000)
    app.include_router(labelling_router(LabellingSession.open(folder, write="both")))
    return TestClient(app)


def test_api_serves_the_page_script_state_and_image(client: TestClient, folder: Path) -> None:
    page = client.get("/label")
    assert page.status_code == 200 and 'id="label-input"' in page.text and "/label/label.js" in page.text
    assert client.get("/label/label.js").headers["content-type"].startswith("text/javascript")
    state = client.get("/label/api/state").json()
    assert state["current"] == {"file": "_b.png", "image": "/label/image/_b.png", "guess": "G1", "confidence": 0.1}
    assert state["progress"] == {"labelled": 1, "total": 4, "done": 0, "skipped": 0}
    assert state["can_undo"] is False and state["write"] == "both"
    image = client.get(state["current"]["image"])
    assert image.status_code == 200 and image.content == (folder / "_b.png").read_bytes()


def test_api_label_skip_undo_round_trip(client: TestClient, folder: Path) -> None:
    before = snapshot(folder)
    state = client.post("/label/api/label", json={"file": "_b.png", "label": "AB12"}).json()
    assert state["last"] == {"action": "label", "file": "_b.png", "label": "AB12", "renamed": "AB12_1.png"}
    assert state["current"]["file"] == "_c.png" and state["progress"]["labelled"] == 2
    assert read_manifest(folder / "labels.csv")["AB12_1.png"] == "AB12"
    state = client.post("/label/api/skip", json={"file": "_c.png"}).json()
    assert state["current"]["file"] == "_a.png" and state["progress"]["skipped"] == 1
    client.post("/label/api/undo")
    state = client.post("/label/api/undo").json()
    assert state["last"]["action"] == "undo" and state["current"]["file"] == "_b.png"
    assert images(snapshot(folder)) == images(before)
    assert read_manifest(folder / "labels.csv") == {"OLD1_1.png": "OLD1"}


@pytest.mark.parametrize(
    ("request_body", "status", "code"),
    [
        ({"file": "_b.png", "label": "A B"}, 400, "invalid_label"),
        ({"file": "_b.png", "label": ""}, 400, "invalid_label"),
        ({"file": "_b.png", "label": "../x"}, 400, "invalid_label"),
        ({"file": "OLD1_1.png", "label": "AB12"}, 404, "not_queued"),
        ({"file": "_b.png"}, 422, "invalid_request"),
    ],
)
def test_api_refuses_bad_requests_with_json(client: TestClient, request_body: dict, status: int, code: str) -> None:
    response = client.post("/label/api/label", json=request_body)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code


def test_api_refuses_a_label_too_long_for_a_file_name_in_bytes(client: TestClient, folder: Path) -> None:
    before = snapshot(folder)
    response = client.post("/label/api/label", json={"file": "_b.png", "label": "\U0001f600" * 64})
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_label"
    assert "bytes" in response.json()["error"]["message"]
    assert snapshot(folder) == before
    assert client.post("/label/api/label", json={"file": "_b.png", "label": "\U0001f600" * 59}).status_code == 200


def test_api_refuses_images_not_in_the_queue_and_an_empty_undo(client: TestClient) -> None:
    assert client.get("/label/image/OLD1_1.png").status_code == 404
    assert client.get("/label/image/..%2F..%2Fetc%2Fpasswd").status_code == 404
    undo = client.post("/label/api/undo")
    assert undo.status_code == 400 and "nothing to undo" in undo.json()["error"]["message"]


def test_cli_label_serves_the_folder_with_the_chosen_write_mode(
    folder: Path, linear_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn

    served = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: served.update(app=app, **options))
    args = ["label", str(folder), "--model", str(linear_model), "--port", "8123", "--write", "rename"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert (served["host"], served["port"]) == ("127.0.0.1", 8123)
    state = TestClient(served["app"]).get("/label/api/state").json()
    assert state["write"] == "rename" and state["current"]["file"] == "_b.png"


def test_cli_label_reports_a_missing_folder_in_one_line(tmp_path: Path, linear_model: Path) -> None:
    result = CliRunner().invoke(cli, ["label", str(tmp_path / "nope"), "--model", str(linear_model)])
    assert result.exit_code == 2 and "error: no such folder" in result.output
