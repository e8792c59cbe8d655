"""The CRNN's stages, one small module each: feature extraction, sequence modelling, prediction.

Shapes use N (batch), C (channels), H and W (input height and width), T
(time steps = feature-map columns), F (features per step), K (classes).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .config import ArchConfig


def downsampled(size: int, factor: int, downsample: str) -> int:
    """Length of one axis after a conv block: floor for max-pooling, ceil for a 'same'-padded stride."""
    return size // factor if downsample == "maxpool" else math.ceil(size / factor)


class FeatureExtractor(nn.Module):
    """Conv blocks (3×3 conv, optional BatchNorm, ReLU, downsampling): ``(N, 1, H, W) -> (N, C, H', W')``."""

    def __init__(self, arch: ArchConfig):
        super().__init__()
        blocks: list[nn.Module] = []
        in_channels = 1
        for channels, pool in zip(arch.channels, arch.pools):
            stride = pool if arch.downsample == "stride" else (1, 1)
            layers: list[nn.Module] = [
                nn.Conv2d(in_channels, channels, 3, stride=stride, padding=1, bias=not arch.batch_norm)
            ]
            if arch.batch_norm:
                layers.append(nn.BatchNorm2d(channels))
            layers.append(nn.ReLU(inplace=True))
            if arch.downsample == "maxpool":
                layers.append(nn.MaxPool2d(pool))
            blocks.append(nn.Sequential(*layers))
            in_channels = channels
        self.blocks = nn.Sequential(*blocks)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.blocks(images)


class ColumnProjection(nn.Module):
    """Each feature-map column becomes one time step: ``(N, C, H', W') -> (N, T=W', F=dense)``.

    A dense layer on each flattened column (the seed's Keras layout: rows
    outer, channels inner), computed as a convolution with a full-height,
    one-column kernel. Same weights, same numbers, but the exported graph no
    longer transposes the whole feature map (on ONNX Runtime that transpose
    cost more than the projection itself); only the small ``(N, F, T)``
    result turns time-major.
    """

    def __init__(self, channels: int, height: int, dense: int, dropout: float):
        super().__init__()
        self.channels, self.height = channels, height
        self.linear = nn.Linear(height * channels, dense)
        self.dropout = nn.Dropout(dropout)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        dense = self.linear.out_features
        # (dense, H'*C) -> (dense, C, H', 1): the Linear's weights as a column kernel.
        kernel = self.linear.weight.view(dense, self.height, self.channels).permute(0, 2, 1).unsqueeze(-1)
        steps = nn.functional.conv2d(features, kernel, self.linear.bias).squeeze(2)  # (N, dense, W')
        return self.dropout(torch.relu(steps.transpose(1, 2)))


class SequenceDropout(nn.Module):
    """Dropout with one mask per sequence, shared by every step (Keras' recurrent-input dropout)."""

    def __init__(self, rate: float):
        super().__init__()
        self.rate = rate

    def forward(self, steps: torch.Tensor) -> torch.Tensor:
        if not self.training or self.rate == 0:
            return steps
        n, _, f = steps.shape
        keep = torch.empty(n, 1, f, device=steps.device).bernoulli_(1 - self.rate)  # (N, 1, F)
        return steps * keep / (1 - self.rate)


class SequenceStack(nn.Module):
    """Layers that read the steps in context, one per ``arch.hidden`` entry, each with
    :class:`SequenceDropout` on its input: ``(N, T, F) -> (N, T, output_size)``.

    Subclasses say what one layer is (:meth:`make_layer`, with the width it
    passes on) and how it reads the steps (:meth:`read`).
    """

    def __init__(self, arch: ArchConfig, input_size: int):
        super().__init__()
        self.dropouts = nn.ModuleList()
        self.layers = nn.ModuleList()
        for size in arch.hidden:
            self.dropouts.append(SequenceDropout(arch.recurrent_dropout))
            layer, input_size = self.make_layer(input_size, size)
            self.layers.append(layer)
        self.output_size = input_size

    def make_layer(self, input_size: int, size: int) -> tuple[nn.Module, int]:
        raise NotImplementedError

    def read(self, layer: nn.Module, steps: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, steps: torch.Tensor) -> torch.Tensor:
        for dropout, layer in zip(self.dropouts, self.layers):
            steps = self.read(layer, dropout(steps))
        return steps


class BidirectionalStack(SequenceStack):
    """Bidirectional LSTM layers: ``(N, T, F) -> (N, T, 2·hidden[-1])``."""

    def make_layer(self, input_size: int, size: int) -> tuple[nn.Module, int]:
        return nn.LSTM(input_size, size, batch_first=True, bidirectional=True), 2 * size

    def read(self, layer: nn.Module, steps: torch.Tensor) -> torch.Tensor:
        return layer(steps)[0]


class ConvolutionalStack(SequenceStack):
    """1-D convolutions over time (kernel 3, 'same' padding, ReLU): ``(N, T, F) -> (N, T, hidden[-1])``.

    Each layer lets a step see one more neighbour on either side, on top of
    what the feature extractor already sees: two layers span about two glyphs
    of a 140 px captcha, enough context to tell a glyph from a curve crossing it.
    """

    def make_layer(self, input_size: int, size: int) -> tuple[nn.Module, int]:
        return nn.Conv1d(input_size, size, 3, padding=1), size

    def read(self, layer: nn.Module, steps: torch.Tensor) -> torch.Tensor:
        return torch.relu(layer(steps.transpose(1, 2))).transpose(1, 2)


def sequence_stage(arch: ArchConfig, input_size: int) -> SequenceStack:
    """The stage that reads the steps in context, as ``arch.sequence`` says."""
    return BidirectionalStack(arch, input_size) if arch.sequence == "lstm" else ConvolutionalStack(arch, input_size)


def keras_init(module: nn.Module) -> None:
    """Initialize like the seed's Keras layers: He-normal convs, Glorot dense, orthogonal recurrence.

    The LSTMs also get Keras' forget-gate bias of 1 (``unit_forget_bias``).
    """
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.Conv1d)):
            nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        elif isinstance(layer, nn.Linear):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)
        elif isinstance(layer, nn.LSTM):
            for name, param in layer.named_parameters():
                if name.startswith("weight_ih"):
                    for gate in param.chunk(4):
                        nn.init.xavier_uniform_(gate)
                elif name.startswith("weight_hh"):
                    for gate in param.chunk(4):
                        nn.init.orthogonal_(gate)
                else:
                    nn.init.zeros_(param)
                    if name.startswith("bias_ih"):
                        param.data[layer.hidden_size : 2 * layer.hidden_size] = 1.0  # gates i, f, g, o
