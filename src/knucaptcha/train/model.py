"""The CRNN: feature extraction, sequence modelling and prediction stages, composed.

``forward(images) -> logits`` and nothing else, so the module exports to ONNX
as it trains. The stage sizes follow from the :class:`~knucaptcha.spec.ModelSpec`
(input height and width, number of classes).
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError
from ..spec import ModelSpec
from .config import ArchConfig
from .stages import ColumnProjection, FeatureExtractor, downsampled, keras_init, sequence_stage


class CRNN(nn.Module):
    """Convolutional features, read column by column by a bidirectional RNN, classified per step.

    Args:
        arch: the stages' sizes.
        spec: the input size and charset (output classes = symbols + blank).

    ``forward``: images ``(N, 1, H, W)`` float32 ink in [0, 1] -> logits ``(N, T, K)``
    with T the feature-map width and K = ``spec.charset.num_classes``.
    """

    def __init__(self, arch: ArchConfig, spec: ModelSpec):
        super().__init__()
        height, width = spec.preprocess.height, spec.preprocess.width
        for pool_height, pool_width in arch.pools:
            height = downsampled(height, pool_height, arch.downsample)
            width = downsampled(width, pool_width, arch.downsample)
        if height < 1 or width < 2 * spec.max_length:
            raise ConfigError(
                f"{spec.preprocess.height}x{spec.preprocess.width} input downsampled by {arch.pools} leaves "
                f"{height}x{width}: too few time steps for labels of {spec.max_length}"
            )
        self.steps = width
        self.features = FeatureExtractor(arch)
        self.projection = ColumnProjection(arch.channels[-1], height, arch.dense, arch.dropout)
        self.sequence = sequence_stage(arch, arch.dense)
        self.classifier = nn.Linear(self.sequence.output_size, spec.charset.num_classes)
        keras_init(self)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = self.features(images)  # (N, C, H', W')
        steps = self.projection(features)  # (N, T, dense)
        return self.classifier(self.sequence(steps))  # (N, T, K)


class Probabilities(nn.Module):
    """A CRNN followed by a softmax over classes: what an exported model file computes.

    Training needs the logits (CTC takes their log-softmax); solving needs
    probabilities, and computing them inside the graph spares every solve a
    softmax in numpy (a tenth of a fast model's single-image time).
    """

    def __init__(self, crnn: nn.Module):
        super().__init__()
        self.crnn = crnn

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.crnn(images), dim=-1)


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters of ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
