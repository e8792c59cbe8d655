"""The CRNN presets: the seed's exact size, shapes for both KNU input sizes, configuration validation."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from knucaptcha.charset import DIGITS_UPPER, SIMPLECAPTCHA, Charset  # noqa: E402
from knucaptcha.errors import ConfigError  # noqa: E402
from knucaptcha.spec import ModelSpec, PreprocessSpec  # noqa: E402
from knucaptcha.train import CRNN, PRESETS, ArchConfig, TrainConfig, count_parameters, preset  # noqa: E402
from knucaptcha.train.stages import ColumnProjection, SequenceDropout  # noqa: E402

KNU = ModelSpec(Charset(DIGITS_UPPER), PreprocessSpec(), max_length=4)
KNU2021 = ModelSpec(Charset(SIMPLECAPTCHA), PreprocessSpec(mode="gray", height=40, width=150, binarize=False), 6)


def keras_seed_parameters(symbols: int) -> int:
    """The seed notebook's ``model.summary()`` total, computed layer by layer as Keras counts.

    Keras' StringLookup adds an OOV token, so its output layer has symbols + 2
    units (OOV and blank); a Keras LSTM has one bias vector per gate.
    """
    conv1 = 3 * 3 * 1 * 32 + 32  # 320
    conv2 = 3 * 3 * 32 * 64 + 64  # 18,496
    dense1 = (35 // 4 * 64) * 64 + 64  # 512 -> 64: 32,832
    lstm1 = 2 * 4 * (128 * (64 + 128) + 128)  # 197,632
    lstm2 = 2 * 4 * (64 * (256 + 64) + 64)  # 164,352
    dense2 = 128 * (symbols + 2) + (symbols + 2)
    return conv1 + conv2 + dense1 + lstm1 + lstm2 + dense2


def test_seed_preset_has_the_notebooks_parameter_count() -> None:
    model = CRNN(preset("seed"), KNU)
    keras = keras_seed_parameters(36)
    assert keras == 418_534
    # PyTorch LSTMs carry two bias vectors per gate (b_ih and b_hh): +2*4*128 and +2*4*64;
    # our output has no OOV class: -(128 + 1).
    assert count_parameters(model) == keras + 2 * 4 * 128 + 2 * 4 * 64 - 129 == 419_941
    print(f"seed preset: {count_parameters(model):,} parameters (Keras: {keras:,})")


def test_fast_preset_is_much_smaller_than_seed() -> None:
    assert count_parameters(CRNN(preset("fast"), KNU)) < count_parameters(CRNN(preset("seed"), KNU)) / 3


def test_wide_preset_stays_under_a_megabyte_of_weights() -> None:
    parameters = count_parameters(CRNN(preset("wide"), KNU))
    assert count_parameters(CRNN(preset("fast"), KNU)) < parameters < 1_000_000 / 4  # float32 bytes


@pytest.mark.parametrize("name", sorted(PRESETS))
@pytest.mark.parametrize("spec", [KNU, KNU2021], ids=["knu", "knu2021"])
def test_logits_have_one_row_per_column_group_and_class(name: str, spec: ModelSpec) -> None:
    model = CRNN(preset(name), spec).eval()
    images = torch.rand(3, 1, spec.preprocess.height, spec.preprocess.width)
    logits = model(images)
    assert logits.shape == (3, model.steps, spec.charset.num_classes)
    assert model.steps >= 2 * spec.max_length
    eighth = -(-spec.preprocess.width // 8)
    assert model.steps == {"seed": spec.preprocess.width // 4, "fast": eighth, "wide": eighth, "wide-conv": eighth}[name]


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_eval_output_of_an_image_does_not_depend_on_its_batch(name: str) -> None:
    torch.manual_seed(0)
    model = CRNN(preset(name), KNU).eval()
    images = (torch.rand(4, 1, 35, 140) > 0.8).float()
    with torch.no_grad():
        together = model(images)
        alone = model(images[2:3])
    assert torch.allclose(together[2:3], alone, atol=1e-5)


def test_input_too_narrow_for_the_label_length_is_rejected() -> None:
    spec = ModelSpec(Charset(DIGITS_UPPER), PreprocessSpec(height=35, width=40), max_length=4)
    with pytest.raises(ConfigError, match="too few time steps"):
        CRNN(preset("fast"), spec)


def test_column_projection_is_a_dense_layer_on_each_flattened_column() -> None:
    # The seed's Keras layout: a column is flattened rows-outer, channels-inner, then Dense.
    # Computed as a convolution, it must still be exactly that (checkpoints depend on it).
    torch.manual_seed(0)
    projection = ColumnProjection(channels=6, height=5, dense=7, dropout=0.0).eval()
    features = torch.randn(2, 6, 5, 9)
    columns = features.permute(0, 3, 2, 1).reshape(2, 9, 5 * 6)
    expected = torch.relu(projection.linear(columns))
    torch.testing.assert_close(projection(features), expected, atol=1e-5, rtol=1e-5)


def test_sequence_dropout_shares_one_mask_across_steps() -> None:
    torch.manual_seed(0)
    dropout = SequenceDropout(0.5).train()
    steps = torch.ones(8, 20, 16)
    dropped = dropout(steps)
    assert torch.equal(dropped, dropped[:, :1, :].expand_as(dropped))  # the same features zeroed at every step
    assert 0 < (dropped == 0).float().mean() < 1
    assert torch.equal(dropout.eval()(steps), steps)


def test_arch_config_round_trips_through_plain_data_and_rejects_unknown_keys() -> None:
    arch = preset("fast")
    as_lists = {k: [list(v) if isinstance(v, tuple) else v for v in value] if isinstance(value, tuple) else value
                for k, value in arch.to_dict().items()}
    assert ArchConfig.from_dict(as_lists) == arch
    with pytest.raises(ConfigError, match="unknown ArchConfig keys: kernel"):
        ArchConfig.from_dict({**arch.to_dict(), "kernel": 5})


@pytest.mark.parametrize(
    "changes",
    [{"channels": (16,), "pools": ((2, 2), (2, 2))}, {"pools": ((2, 2), (0, 2))}, {"dropout": 1.0},
     {"downsample": "avgpool"}, {"hidden": ()}, {"sequence": "gru"}],
)
def test_arch_config_validates_values(changes: dict) -> None:
    with pytest.raises(ConfigError):
        ArchConfig(**changes)


def test_a_convolutional_sequence_stage_reads_each_step_with_its_neighbours_only() -> None:
    """``wide-conv``'s two kernel-3 layers: changing the 8 columns of step 8 reaches steps 8 and 9 through the
    extractor (15 px wide), and two more on either side through the convolutions: 6 to 11, never a far one."""
    torch.manual_seed(0)
    model = CRNN(preset("wide-conv"), KNU).eval()
    images = (torch.rand(1, 1, 35, 140) > 0.8).float()
    changed = images.clone()
    changed[..., 64:72] = 1 - changed[..., 64:72]  # the columns of step 8
    with torch.no_grad():
        moved = (model(images) - model(changed)).abs().amax(-1)[0]
    assert moved[6:12].min() > 0
    assert moved[:6].max() == 0 and moved[12:].max() == 0
    lstm = CRNN(preset("wide"), KNU).eval()
    with torch.no_grad():
        assert (lstm(images) - lstm(changed)).abs().amax(-1)[0].min() > 0  # an LSTM carries it to every step


def test_train_config_validates_and_rejects_unknown_keys() -> None:
    assert TrainConfig.from_dict(TrainConfig().to_dict()) == TrainConfig()
    with pytest.raises(ConfigError, match="unknown TrainConfig keys: epochs"):
        TrainConfig.from_dict({"epochs": 3})
    for bad in ({"batch_size": 0}, {"lr": 0.0}, {"valid_fraction": 1.0}, {"min_epochs": -1}):
        with pytest.raises(ConfigError):
            TrainConfig(**bad)


def test_unknown_preset_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown preset 'huge'"):
        preset("huge")
