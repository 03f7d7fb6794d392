"""A patch-based transformer encoder for multichannel time series (activity recognition from wearable sensors).

Input: (channels, length). The series is cut into non-overlapping patches of ``patch_size`` steps of every
channel (PatchTST, Nie et al., 2023, arXiv:2211.14730, with channels mixed in each token as in ViT, Dosovitskiy
et al., 2021); each patch of ``channels * patch_size`` values is mapped to a ``d_model`` token by one linear layer.
When ``length`` is not a multiple of ``patch_size`` the end of the series is zero-padded (after per-channel
normalisation zero is the channel's mean). A learned positional embedding is added, ``depth`` pre-norm encoder
blocks follow, then a final LayerNorm, mean pooling over the tokens (no CLS token: every token contributes, and
there is one parameter fewer to look after) and the output layer.

The encoder block computes exactly what ``nn.TransformerEncoderLayer(d_model, heads, mlp_ratio * d_model, dropout,
activation="gelu", batch_first=True, norm_first=True)`` computes (a test checks this with shared weights), but
from plain ``nn.Linear`` layers and ``F.scaled_dot_product_attention``. PyTorch's layer keeps the query/key/value
projection as a bare ``in_proj_weight`` tensor and, in eval mode, runs a fused kernel that never calls its Linear
submodules, so weight quantization and pruning would skip 3/8 of the attention weights, activation quantizers
and other forward hooks would not run at evaluation, and low-rank factorization of ``out_proj`` would break it.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import ModelError
from ._registry import register_model
from ._zoo import _head


class EncoderBlock(nn.Module):
    """Pre-norm transformer block: ``x + attention(norm1(x))``, then ``x + mlp(norm2(x))``, GELU, dropout."""

    def __init__(self, d_model: int, heads: int, hidden: int, dropout: float):
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.norm1 = nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)  # queries, keys and values of every head in one matmul
        self.proj = nn.Linear(d_model, d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.fc1 = nn.Linear(d_model, hidden)
        self.fc2 = nn.Linear(hidden, d_model)
        self.drop = nn.Dropout(dropout)

    def attention(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, N, D)
        q, k, v = self.qkv(x).unflatten(-1, (3, self.heads, -1)).permute(2, 0, 3, 1, 4)  # each (B, H, N, D / H)
        attended = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)
        return self.proj(attended.transpose(1, 2).flatten(2))  # (B, N, D)

    def forward(self, x):  # x: (B, N, D)
        x = x + self.drop(self.attention(self.norm1(x)))
        return x + self.drop(self.fc2(self.drop(F.gelu(self.fc1(self.norm2(x))))))


class TSTransformer(nn.Module):
    """Patch embedding + positional embedding -> transformer encoder -> LayerNorm -> mean over tokens -> head."""

    def __init__(self, input_shape: tuple[int, ...], num_outputs: int, patch_size: int, d_model: int, depth: int,
                 heads: int, mlp_ratio: float, dropout: float, target_mean: float, target_std: float):
        super().__init__()
        _check_options(input_shape, patch_size, d_model, depth, heads, mlp_ratio, dropout)
        self.channels, length = (int(d) for d in input_shape)
        self.patch_size = patch_size
        self.num_patches = math.ceil(length / patch_size)
        self.pad = self.num_patches * patch_size - length
        self.patch_embed = nn.Linear(self.channels * patch_size, d_model)
        self.pos_embed = nn.Parameter(torch.zeros(1, self.num_patches, d_model))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        hidden = max(1, round(mlp_ratio * d_model))
        self.encoder = nn.Sequential(*(EncoderBlock(d_model, heads, hidden, dropout) for _ in range(depth)))
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Sequential(*_head(d_model, num_outputs, target_mean, target_std))

    def patches(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, L) series -> (B, N, C * patch_size) tokens, zero-padding the end to N * patch_size steps."""
        if self.pad:
            x = F.pad(x, (0, self.pad))
        x = x.unflatten(2, (self.num_patches, self.patch_size))  # (B, C, N, P)
        return x.transpose(1, 2).flatten(2)  # (B, N, C * P), each token holding every channel of its patch

    def forward(self, x):  # x: (B, C, L)
        tokens = self.patch_embed(self.patches(x)) + self.pos_embed  # (B, N, d_model)
        return self.head(self.norm(self.encoder(tokens)).mean(dim=1))


def _check_options(input_shape, patch_size, d_model, depth, heads, mlp_ratio, dropout) -> None:
    if len(input_shape) != 2:
        raise ModelError(f"ts_transformer needs time-series inputs (channels, length), got {list(input_shape)}")
    for name, value in (("patch_size", patch_size), ("d_model", d_model), ("depth", depth), ("heads", heads)):
        if value < 1:
            raise ModelError(f"ts_transformer {name} must be at least 1, got {value}")
    if d_model % heads:
        raise ModelError(f"ts_transformer d_model ({d_model}) must be a multiple of heads ({heads})")
    if not mlp_ratio > 0:
        raise ModelError(f"ts_transformer mlp_ratio must be positive, got {mlp_ratio}")
    if not 0.0 <= dropout < 1.0:
        raise ModelError(f"ts_transformer dropout must be in [0, 1), got {dropout}")


@register_model("ts_transformer")
def ts_transformer(input_shape, num_outputs, patch_size: int = 5, d_model: int = 64, depth: int = 2, heads: int = 4,
                   mlp_ratio: float = 2.0, dropout: float = 0.1, target_mean: float = 0.0, target_std: float = 1.0):
    """Time-series transformer; the defaults suit BasicMotions (6 channels x 100 steps: 20 tokens of 30 values)."""
    return TSTransformer(tuple(input_shape), num_outputs, int(patch_size), int(d_model), int(depth), int(heads),
                         float(mlp_ratio), float(dropout), target_mean, target_std)
