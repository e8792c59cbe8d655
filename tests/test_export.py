"""ONNX export: one self-describing file whose probabilities equal PyTorch's within 1e-4."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from knucaptcha.charset import DIGITS_UPPER, SIMPLECAPTCHA, Charset  # noqa: E402
from knucaptcha.errors import ModelError  # noqa: E402
from knucaptcha.inference import Solver  # noqa: E402
from knucaptcha.spec import ModelSpec, PreprocessSpec  # noqa: E402
from knucaptcha.train import CRNN, check_parity, export_onnx, preset  # noqa: E402
from knucaptcha.train.export import PARITY_TOLERANCE  # noqa: E402

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


@pytest.mark.parametrize("name", ["fast", "seed"])
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


@pytest.mark.parametrize("name, layers", [("fast", 1), ("seed", 2)])
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
    assert ops.count("Conv") == len(preset(name).channels) + 1
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
