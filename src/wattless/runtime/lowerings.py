"""Lowerings of zoo blocks that ``torch.fx`` cannot trace: the transformer's pre-norm encoder block."""

from __future__ import annotations

from ..models.transformer import EncoderBlock
from .graph import Graph, lower_layer, register_lowering


@register_lowering(EncoderBlock)
def lower_encoder_block(graph: Graph, x: str, block: EncoderBlock, name: str) -> str:
    """``x + proj(attention(qkv(norm1(x))))``, then ``+ fc2(gelu(fc1(norm2(.))))`` (dropout is off at inference)."""
    tokens, width = graph.shapes[x]
    hidden = block.fc1.out_features
    normed = lower_layer(graph, block.norm1, f"{name}.norm1", x, (tokens, width))
    qkv = lower_layer(graph, block.qkv, f"{name}.qkv", normed, (tokens, 3 * width))
    attended = graph.add("attention", f"{name}.attention", [qkv], (tokens, width), heads=block.heads)
    projected = lower_layer(graph, block.proj, f"{name}.proj", attended, (tokens, width))
    x = graph.add("add", f"{name}.residual1", [x, projected], (tokens, width))
    normed = lower_layer(graph, block.norm2, f"{name}.norm2", x, (tokens, width))
    expanded = lower_layer(graph, block.fc1, f"{name}.fc1", normed, (tokens, hidden))
    activated = graph.add("act", f"{name}.gelu", [expanded], (tokens, hidden), fn="gelu")
    contracted = lower_layer(graph, block.fc2, f"{name}.fc2", activated, (tokens, width))
    return graph.add("add", f"{name}.residual2", [x, contracted], (tokens, width))
