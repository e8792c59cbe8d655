"""The models that ship inside the package: they load from the base install, describe themselves, and read their style."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from knucaptcha.charset import ALPHANUMERIC
from knucaptcha.ctc import READ_LENGTH_KEY
from knucaptcha.generator import generate_samples, get_style, write_dataset
from knucaptcha.inference import BUNDLED_MODELS, Solver
from knucaptcha.metrics import score
from knucaptcha.preprocess import to_batch
from knucaptcha.spec import METADATA_PREFIX
from knucaptcha.train.checkpoint import BUNDLED, load_checkpoint
from knucaptcha.train.export import checkpoint_export_args

OPAQUE_BAR = 0.3  # it reads 36% (49% ignoring case): a start for folder training, not a finished reader
# name -> (style it reads, charset, max length, preset, the bar at medium difficulty on 300 fresh images)
SHIPPED = {
    "default": ("knu", "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", 4, "wide-conv", 0.99),
    "knu2021": ("knu2021", "abcdefghkmnprwxy2345678", 4, "fast", 0.99),
    # A starting point for folders of opaque captchas, not a site's reader: 62 symbols (O, o and 0 alike), 4-8 long.
    "opaque": ("opaque", ALPHANUMERIC, 8, "fast", OPAQUE_BAR),
}


def test_every_bundled_onnx_model_has_its_pytorch_weights_beside_it() -> None:
    assert set(BUNDLED_MODELS) == set(BUNDLED) == set(SHIPPED)


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_a_shipped_model_describes_itself_and_reads_fresh_captchas_of_its_style(name: str) -> None:
    style_name, charset, max_length, preset, bar = SHIPPED[name]
    solver = Solver.load(name)
    assert solver.name == name and solver.spec.charset.symbols == charset and solver.spec.max_length == max_length
    style = get_style(style_name, "medium")
    assert solver.spec.preprocess == style.preprocess
    assert solver.metadata[f"{METADATA_PREFIX}preset"] == preset
    training = json.loads(solver.metadata[f"{METADATA_PREFIX}training"])
    assert training["data"]["kind"] == "generated" and training["data"]["style"] == style_name
    samples = list(generate_samples(style, seed=123_457, count=300))  # a seed no training run used
    predictions = solver.solve_batch([s.image for s in samples])
    assert score([s.label for s in samples], [p.text for p in predictions]).sequence_accuracy >= bar


def test_told_a_sites_alphabet_the_default_reads_only_it_and_no_fewer_captchas() -> None:
    practice = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # the practice site's: no 0, O, 1 or I
    samples = list(generate_samples(get_style("knu", "hard", charset=practice), seed=123_458, count=300))
    solver, labels = Solver.load("default"), [s.label for s in samples]
    images = [s.image for s in samples]
    plain = [p.text for p in solver.solve_batch(images)]
    told = [p.text for p in solver.solve_batch(images, symbols=practice)]
    assert all(set(text) <= set(practice) for text in told)
    assert score(labels, told).sequence_accuracy >= score(labels, plain).sequence_accuracy


def test_told_the_length_the_default_reads_no_fewer_hard_captchas_and_changes_only_wrong_length_readings() -> None:
    samples = list(generate_samples(get_style("knu", "hard"), seed=123_459, count=300))
    solver, labels = Solver.load("default"), [s.label for s in samples]
    images = [s.image for s in samples]
    plain = [p.text for p in solver.solve_batch(images, length=0)]  # any number of symbols
    told = [p.text for p in solver.solve_batch(images, length=4)]
    assert [p.text for p in solver.solve_batch(images)] == told  # the file stores 4: what it reads untold
    assert all(len(text) == 4 for text in told)
    assert all(a == b for a, b in zip(plain, told) if len(a) == 4)
    assert score(labels, told).sequence_accuracy >= score(labels, plain).sequence_accuracy
    beam = [p.text for p in solver.solve_batch(images[:40], beam_width=4, length=4)]
    assert all(len(text) == 4 for text in beam)


def test_each_shipped_model_stores_a_digest_of_its_weights() -> None:
    for name in SHIPPED:
        assert len(Solver.load(name).metadata[f"{METADATA_PREFIX}weights_sha256"]) == 64


def test_each_shipped_model_stores_the_length_of_its_captchas_and_its_weights_imply_it() -> None:
    # Stamped by `knucaptcha export NAME --format onnx --read-length N` (README, "Using it on the real page").
    assert {name: Solver.load(name).read_length for name in SHIPPED} == {"default": 4, "knu2021": 4, "opaque": None}
    for name in ("default", "knu2021"):  # what their training data implies: their style's length
        assert checkpoint_export_args(name)[2][READ_LENGTH_KEY] == "4"
    assert READ_LENGTH_KEY not in checkpoint_export_args("opaque")[2]  # 4 to 8: no one length


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_the_shipped_weights_for_fine_tuning_match_the_onnx_model(name: str) -> None:
    style_name = SHIPPED[name][0]
    loaded = load_checkpoint(name)
    assert loaded.spec == Solver.load(name).spec
    images = [s.image for s in generate_samples(get_style(style_name, "mixed"), seed=5, count=8)]
    inputs = to_batch(images, loaded.spec.preprocess)
    with torch.no_grad():
        expected = torch.softmax(loaded.model(torch.from_numpy(inputs)), -1).numpy()
    assert abs(Solver.load(name).probabilities(inputs) - expected).max() < 1e-4


def test_solve_without_a_model_uses_the_default_in_a_process_without_torch(tmp_path: Path) -> None:
    style = get_style("knu", "easy")
    write_dataset(tmp_path, style, 3, seed=99)
    script = (
        "import sys\n"
        "from knucaptcha.cli import app\n"
        "try:\n"
        "    app(['solve', '--json', sys.argv[1]])\n"
        "except SystemExit as end:\n"
        "    assert not end.code, end.code\n"
        "assert 'torch' not in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    readings = json.loads(done.stdout)
    assert len(readings) == 3 and all(len(reading["text"]) == 4 for reading in readings)
