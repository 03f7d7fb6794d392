"""Hand-written modules of the kind users bring, for the compatibility matrix (benchmarks/compat.py).

Each is what a user's own package would hold: a class taking ``(input_shape, num_outputs)``, named to wattless as
``usermodules:ClassName`` (this folder on the path, ``trust_code``), so ``.wlz`` files rebuild it. Between them
they use the constructs that break graph-based toolkits: split/concat/skip connections, grouped and depthwise
convolutions, attention, recurrent layers, embeddings, and a ``forward`` with loops, branches and a dict output.
"""

from __future__ import annotations

import torch
from torch import nn


class SplitConcatSkip(nn.Module):
    """Images: a stem whose channels are split into two branches, concatenated again, and added to the stem."""

    def __init__(self, input_shape, num_outputs, width: int = 16):
        super().__init__()
        channels = input_shape[0]
        self.stem = nn.Sequential(nn.Conv2d(channels, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU())
        half = width // 2
        self.left = nn.Sequential(nn.Conv2d(half, half, 3, padding=1), nn.ReLU())
        self.right = nn.Sequential(nn.Conv2d(half, half, 5, padding=2), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(width, num_outputs)

    def forward(self, x):
        stem = self.stem(x)
        left, right = torch.split(stem, stem.shape[1] // 2, dim=1)
        merged = torch.cat([self.left(left), self.right(right)], dim=1) + stem
        return self.head(self.pool(merged).flatten(1))


class GroupedDepthwise(nn.Module):
    """Images: a grouped convolution, then a depthwise-separable block (depthwise 3x3, pointwise 1x1)."""

    def __init__(self, input_shape, num_outputs, width: int = 16, groups: int = 4):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(input_shape[0], width, 3, padding=1), nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1, groups=groups), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1, groups=width), nn.ReLU(),
            nn.Conv2d(width, 2 * width, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(2 * width, num_outputs)

    def forward(self, x):
        return self.head(self.features(x))


class TokenAttention(nn.Module):
    """Token ids: an embedding, one multi-head self-attention layer with a residual and LayerNorm, mean pooling."""

    def __init__(self, input_shape, num_outputs, vocab: int = 64, dim: int = 32, heads: int = 4):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.position = nn.Parameter(torch.zeros(1, input_shape[0], dim))
        self.attention = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_outputs)

    def forward(self, tokens):
        x = self.embed(tokens.long()) + self.position
        attended, _ = self.attention(x, x, x, need_weights=False)
        return self.head(self.norm(x + attended).mean(dim=1))


class SeriesLSTM(nn.Module):
    """Series (channels x steps): a two-layer LSTM over the steps, the last step's state to a linear head."""

    def __init__(self, input_shape, num_outputs, hidden: int = 32):
        super().__init__()
        self.lstm = nn.LSTM(input_shape[0], hidden, num_layers=2, batch_first=True)
        self.head = nn.Linear(hidden, num_outputs)

    def forward(self, x):
        out, _ = self.lstm(x.transpose(1, 2))
        return self.head(out[:, -1])


class SeriesGRU(nn.Module):
    """Series (channels x steps): a bidirectional GRU, mean over the steps, a linear head."""

    def __init__(self, input_shape, num_outputs, hidden: int = 24):
        super().__init__()
        self.gru = nn.GRU(input_shape[0], hidden, batch_first=True, bidirectional=True)
        self.head = nn.Linear(2 * hidden, num_outputs)

    def forward(self, x):
        out, _ = self.gru(x.transpose(1, 2))
        return self.head(out.mean(dim=1))


class TokenEmbedding(nn.Module):
    """Token ids: an embedding table, mean pooling, a small MLP (a bag-of-words classifier)."""

    def __init__(self, input_shape, num_outputs, vocab: int = 64, dim: int = 32):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 64), nn.ReLU(), nn.Linear(64, num_outputs))

    def forward(self, tokens):
        return self.mlp(self.embed(tokens.long()).mean(dim=1))


class LoopsAndBranches(nn.Module):
    """Images: a ``forward`` with a Python loop over blocks, branches on constructor flags and on the input's rank,
    an early exit, and a dict output (``logits`` beside auxiliary features), as research code often has."""

    def __init__(self, input_shape, num_outputs, depth: int = 3, gated: bool = True, exit_after: int | None = None):
        super().__init__()
        features = 1
        for size in input_shape:
            features *= size
        self.inp = nn.Linear(features, 64)
        self.blocks = nn.ModuleList(nn.Sequential(nn.Linear(64, 64), nn.ReLU()) for _ in range(depth))
        self.gate = nn.Linear(64, 64) if gated else None
        self.exit_after = exit_after
        self.head = nn.Linear(64, num_outputs)

    def forward(self, x):
        if x.dim() > 2:
            x = x.flatten(1)
        h = torch.relu(self.inp(x))
        for i, block in enumerate(self.blocks):
            h = h + block(h)
            if self.exit_after is not None and i + 1 >= self.exit_after:
                break
        if self.gate is not None:
            h = h * torch.sigmoid(self.gate(h))
        return {"logits": self.head(h), "features": h}
