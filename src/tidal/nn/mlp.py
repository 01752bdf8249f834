"""The built-in architecture ``mlp``: a multilayer perceptron for tabular rows (imported only with torch)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

#: The activations ``module_params.activation`` may name.
ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU, "silu": nn.SiLU}


class MLP(nn.Module):
    """Linear layers of the ``hidden`` widths, each followed by the activation and dropout, then a linear
    output layer of ``out_features``; ``hidden: []`` is a linear model."""

    def __init__(self, in_features: int, out_features: int, hidden: Sequence[int] = (64,), dropout: float = 0.0,
                 activation: str = "relu") -> None:
        super().__init__()
        if isinstance(hidden, int | str) or not all(isinstance(h, int) and h > 0 for h in hidden):
            raise ValueError(f"hidden must be a list of positive layer widths, not {hidden!r}")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), not {dropout!r}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {', '.join(sorted(ACTIVATIONS))}, not {activation!r}")
        layers: list[nn.Module] = []
        width = in_features
        for size in hidden:
            layers += [nn.Linear(width, size), ACTIVATIONS[activation]()]
            if dropout:
                layers.append(nn.Dropout(float(dropout)))
            width = size
        layers.append(nn.Linear(width, out_features))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.net(x)
        return out


__all__ = ["ACTIVATIONS", "MLP"]
