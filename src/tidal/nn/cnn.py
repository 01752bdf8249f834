"""The built-in architecture ``cnn``: a small convolutional network for images (imported only with torch).

It takes the rows :class:`tidal.data.images.prepare.ImagePreprocessor` gives (``C * H * W`` float32 numbers
per image, channel by channel) and reshapes them back to ``input_shape`` = (C, H, W), which tidal fills from
the prepare step (the estimator's ``input_shape``), so the same network serves the same rows.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from tidal.nn.mlp import ACTIVATIONS


class CNN(nn.Module):
    """One block per entry of ``channels``: a ``kernel`` x ``kernel`` convolution (padded to keep the size),
    the activation, and a 2 x 2 max-pool while the image is at least 2 pixels high and wide; then the
    flattened maps go through a linear layer of ``hidden`` units (none for ``hidden: 0``), the activation,
    dropout, and a linear output layer of ``out_features``."""

    def __init__(self, in_features: int, out_features: int, input_shape: Sequence[int],
                 channels: Sequence[int] = (16, 32), kernel: int = 3, hidden: int = 64, dropout: float = 0.0,
                 activation: str = "relu") -> None:
        super().__init__()
        if input_shape is None:
            raise ValueError("a cnn needs images: no image shape (channels, height, width) is known; train it on "
                             "images (prepare.images), or set model.params.input_shape")
        if len(input_shape) != 3 or not all(isinstance(v, int) and v > 0 for v in input_shape):
            raise ValueError(f"input_shape must be (channels, height, width), not {input_shape!r}")
        c, h, w = (int(v) for v in input_shape)
        if c * h * w != in_features:
            raise ValueError(f"input_shape {c}x{h}x{w} holds {c * h * w} numbers, but the rows have {in_features}")
        if isinstance(channels, int | str) or not channels or not all(isinstance(v, int) and v > 0
                                                                      for v in channels):
            raise ValueError(f"channels must be a list of positive channel counts, not {channels!r}")
        if isinstance(kernel, bool) or not isinstance(kernel, int) or kernel < 1:
            raise ValueError(f"kernel must be a whole number >= 1, not {kernel!r}")
        if kernel > min(h, w):
            raise ValueError(f"kernel {kernel} is larger than the {h}x{w} image")
        if isinstance(hidden, bool) or not isinstance(hidden, int) or hidden < 0:
            raise ValueError(f"hidden must be a whole number >= 0, not {hidden!r}")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), not {dropout!r}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {', '.join(sorted(ACTIVATIONS))}, not {activation!r}")
        self.input_shape = (c, h, w)
        layers: list[nn.Module] = []
        depth = c
        for width in channels:
            # padding kernel // 2 keeps an odd kernel's output the input's size; an even one grows it by one
            layers += [nn.Conv2d(depth, width, kernel, padding=kernel // 2), ACTIVATIONS[activation]()]
            h, w = h + 2 * (kernel // 2) - kernel + 1, w + 2 * (kernel // 2) - kernel + 1
            if h >= 2 and w >= 2:
                layers.append(nn.MaxPool2d(2))
                h, w = h // 2, w // 2
            depth = width
        self.features = nn.Sequential(*layers)
        head: list[nn.Module] = [nn.Flatten()]
        flat = depth * h * w
        if hidden:
            head += [nn.Linear(flat, hidden), ACTIVATIONS[activation]()]
            flat = hidden
        if dropout:
            head.append(nn.Dropout(float(dropout)))
        head.append(nn.Linear(flat, out_features))
        self.head = nn.Sequential(*head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.head(self.features(x.reshape(x.shape[0], *self.input_shape)))
        return out


__all__ = ["CNN"]
