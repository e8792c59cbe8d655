"""ONNX export: one self-describing file whose probabilities equal PyTorch's within 1e-4."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

torch = pytest.importorskip("torch")

from knucaptcha.charset import DIGITS_UPPER, SIMPLECAPTCHA, Charset  # noqa: E402
from knucaptcha.cli import app  # noqa: E402
from knucaptcha.ctc import READ_LENGTH_KEY  # noqa: E402
from knucaptcha.errors import ModelError  # noqa: E402
from knucaptcha.inference import Solver  # noqa: E402
from knucaptcha.spec import ModelSpec, PreprocessSpec  # noqa: E402
from knucaptcha.train import CRNN, check_parity, export_onnx, preset  # noqa: E402
from knucaptcha.train.checkpoint import describe, save  # noqa: E402
from knucaptcha.train.export import PARITY_TOLERANCE, run_metadata, trained_read_length  # noqa: E402

KNU = ModelSpec(Charset(DIGITS_UPPER), PreprocessSpec(), max_length=4)
KNU2021 = ModelSpec(Charset(SIMPLECAPTCHA), PreprocessSpec(mode="gray", height=40, width=150, binarize=False), 6)


def trained_a_little(name: str, spec: ModelSpec) -> CRNN:
    """A model whose BatchNorm statistics and weights are no longer at their initial values."""
    torch.manual_seed(1)
    model = CRNN(preset(name), spec).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(3):
        loss = model(torch.rand(8, 1, spec.preprocess.height, spec.preprocess.width)).logsumexp(-1).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


@pytest.mark.parametrize("name", ["fast", "seed", "wide-conv"])
@pytest.mark.parametrize("spec", [KNU, KNU2021], ids=["knu", "knu2021"])
def test_onnx_logits_equal_pytorch_logits(tmp_path: Path, name: str, spec: ModelSpec) -> None:
    model = trained_a_little(name, spec)
    path = export_onnx(model, spec, tmp_path / "model.onnx", {"knucaptcha.preset": name})
    assert check_parity(model, path, spec) <= PARITY_TOLERANCE
    # The same through the solver, on a batch size the export never saw.
    solver = Solver.load(path)
    inputs = (np.random.default_rng(3).random((7, 1, spec.preprocess.height, spec.preprocess.width)) > 0.7)
    inputs = inputs.astype(np.float32)
    with torch.no_grad():
        expected = torch.softmax(model(torch.from_numpy(inputs)), dim=-1).numpy()
    np.testing.assert_allclose(solver.probabilities(inputs), expected, atol=1e-5)


@pytest.mark.parametrize("name, layers", [("fast", 1), ("seed", 2), ("wide-conv", 0)])
def test_exported_graph_ends_in_probabilities_and_computes_no_lstm_state(
    tmp_path: Path, name: str, layers: int
) -> None:
    import onnx

    path = export_onnx(trained_a_little(name, KNU), KNU, tmp_path / "m.onnx")
    graph = onnx.load(str(path)).graph
    ops = [node.op_type for node in graph.node]
    assert ops[-1] == "Softmax" and [output.name for output in graph.output] == ["probabilities"]
    # The zero initial state is ONNX's default, not five ops computed per call; and no
    # transpose of the whole feature map before the projection (it is a convolution).
    assert "ConstantOfShape" not in ops and "Shape" not in ops
    lstms = [node for node in graph.node if node.op_type == "LSTM"]
    assert len(lstms) == layers and all(len(lstm.input) <= 5 for lstm in lstms)
    arch = preset(name)
    assert ops.count("Conv") == len(arch.channels) + 1 + (len(arch.hidden) if arch.sequence == "conv" else 0)
    solver = Solver.load(path)
    assert solver.metadata["knucaptcha.output"] == "probabilities"
    inputs = (np.random.default_rng(0).random((3, 1, 35, 140)) > 0.8).astype(np.float32)
    np.testing.assert_allclose(solver.probabilities(inputs).sum(-1), 1.0, atol=1e-5)


def test_exported_file_describes_itself(tmp_path: Path) -> None:
    model = trained_a_little("fast", KNU)
    arch = json.dumps(preset("fast").to_dict())
    path = export_onnx(model, KNU, tmp_path / "m.onnx", {"knucaptcha.preset": "fast", "knucaptcha.arch": arch})
    solver = Solver.load(path)
    assert solver.spec == KNU
    assert solver.metadata["knucaptcha.preset"] == "fast"
    assert json.loads(solver.metadata["knucaptcha.arch"])["channels"] == [16, 32, 64]
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]  # no temporary files left behind


def test_metadata_keys_must_carry_the_prefix(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="must start with"):
        export_onnx(trained_a_little("fast", KNU), KNU, tmp_path / "m.onnx", {"preset": "fast"})
    assert not list(tmp_path.iterdir())


def test_parity_check_catches_a_model_that_differs(tmp_path: Path) -> None:
    model = trained_a_little("fast", KNU)
    path = export_onnx(model, KNU, tmp_path / "m.onnx")
    with torch.no_grad():
        model.classifier.bias[0] += 1e-2  # one class only: a shift of all of them leaves the softmax alone
    with pytest.raises(ModelError, match="differs from PyTorch"):
        check_parity(model, path, KNU)


def test_parity_check_catches_metadata_for_another_spec(tmp_path: Path) -> None:
    model = trained_a_little("fast", KNU)
    path = export_onnx(model, KNU, tmp_path / "m.onnx")
    other = ModelSpec(KNU.charset, KNU.preprocess, max_length=5)
    with pytest.raises(ModelError, match="reads back as"):
        check_parity(model, path, other)


GENERATED_KNU = {"data": {"kind": "generated", "style": "knu", "difficulty": "mixed"}}
"""The part of a training summary that says the model learned generated ``knu`` captchas."""


def test_training_on_a_style_of_one_length_stores_it_as_the_reading_length(tmp_path: Path) -> None:
    assert trained_read_length(GENERATED_KNU) == trained_read_length(GENERATED_KNU, max_length=4) == 4
    assert trained_read_length(GENERATED_KNU, max_length=3) is None  # a model that cannot read 4
    for unknown in (None, {}, {"data": {"kind": "folder"}}, {"data": {"kind": "generated", "style": "gone"}}):
        assert trained_read_length(unknown) is None
    model = trained_a_little("fast", KNU)
    stamped = export_onnx(model, KNU, tmp_path / "knu.onnx", run_metadata("fast", preset("fast"), GENERATED_KNU))
    assert Solver.load(stamped).read_length == 4
    folder = run_metadata("fast", preset("fast"), {"data": {"kind": "folder"}})
    assert READ_LENGTH_KEY not in folder and Solver.load(export_onnx(model, KNU, tmp_path / "f.onnx", folder)).read_length is None


@pytest.fixture(scope="module")
def knu_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run folder as training leaves it, for generated ``knu`` captchas: model.pt and model.onnx."""
    model = trained_a_little("fast", KNU)
    run = tmp_path_factory.mktemp("run")
    save({**describe(model, KNU, preset("fast"), "fast"), "training": GENERATED_KNU}, run / "model.pt")
    export_onnx(model, KNU, run / "model.onnx", run_metadata("fast", preset("fast"), GENERATED_KNU))
    return run


def test_cli_export_onnx_stamps_the_reading_length_asked_for(knu_run: Path, tmp_path: Path) -> None:
    def export(*options: str) -> dict:
        result = CliRunner().invoke(app, ["export", str(knu_run), "--format", "onnx", "--samples", "0", "--json", *options])
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    kept = export()  # the checkpoint's: its training data's length
    assert kept["file"] == str(knu_run / "model.fp32.onnx") and kept["read_length"] == 4
    for asked, stored in (("2", 2), ("0", None)):
        report = export("--read-length", asked, "--out", str(tmp_path / f"{asked}.onnx"))
        solver = Solver.load(report["file"])
        assert report["read_length"] == solver.read_length == stored
        assert solver.metadata["knucaptcha.preset"] == "fast" and solver.metadata.get(READ_LENGTH_KEY) == (stored and str(stored))
    refused = CliRunner().invoke(app, ["export", str(knu_run), "--format", "onnx", "--read-length", "5"])
    assert refused.exit_code == 2 and refused.stderr.count("\n") == 1 and "reads 1 to 4 symbols" in refused.stderr
    onnx = knu_run / "model.onnx"
    refused = CliRunner().invoke(app, ["export", str(knu_run), "--format", "onnx", "--out", str(onnx)])
    assert refused.exit_code == 2 and "is the model being exported" in refused.stderr
