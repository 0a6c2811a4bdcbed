"""Widening a trained decoder without changing what it computes (Net2WiderNet, Chen et al.
2016), so a wider decoder starts where the trained one is instead of from random weights.

A level of width c grows to r c (r a whole number). Every old channel appears r times, and
new group g of the per-frame GroupNorm holds r copies of old group g's channels, so each
group's mean and variance, and with them the normalised values, are what they were. A layer
that writes a widened level copies the rows of the channel it duplicates; a layer that reads
one splits each old weight among the r copies with random shares that sum to one. The sum
is unchanged, so the output is too (up to float rounding), while unequal shares give the
copies different gradients: exact copies would stay copies for ever.

Only the decoder is widened: the encoder, and so every bit and the entropy model fitted to
them, stay as they were."""

from __future__ import annotations

import re
from typing import Callable

import torch
from torch import nn

_BLOCK = re.compile(r"decoder\.(?:blocks\.(\d+)\.\d+|mid\.\d+)\.(norm[12]\.to_scale_shift|conv[12]\.conv)\.(weight|bias)$")
_UP = re.compile(r"decoder\.ups\.(\d+)\.conv\.conv\.(weight|bias)$")


def channel_map(old: int, new: int, groups: int) -> torch.Tensor:
    """For each of `new` channels, the old channel it copies: new group g is old group g's
    channels repeated new/old times, so GroupNorm statistics do not move."""
    if new % old or old % groups:
        raise ValueError(f"cannot widen {old} channels to {new} in {groups} groups: the new width must be a "
                         f"whole multiple of the old, and the old a multiple of the groups")
    g_old, g_new = old // groups, new // groups
    n = torch.arange(new)
    return (n // g_new) * g_old + (n % g_new) % g_old


def _shares(shape: tuple[int, ...], mapping: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random positive weights along axis 1 (a conv's inputs) that sum to one over the copies
    of each old channel (mapping[n] = old channel of new channel n)."""
    u = 0.5 + torch.rand(shape, generator=gen, dtype=torch.float64)
    totals = torch.zeros((shape[0], int(mapping.max()) + 1) + shape[2:], dtype=torch.float64)
    totals.index_add_(1, mapping, u)
    return u / totals.index_select(1, mapping)


def _scale_shift(mapping: torch.Tensor, old_width: int) -> torch.Tensor:
    """The map of an AdaptiveGroupNorm's modulation conv, whose outputs are [scale | shift]."""
    return torch.cat([mapping, mapping + old_width])


def _expand(mapping: torch.Tensor, group: int) -> torch.Tensor:
    """A channel map for a layout of `group` consecutive entries per channel (a depth-to-space
    conv writes out * rt * rs * rs channels, channel-major)."""
    return (mapping[:, None] * group + torch.arange(group)).reshape(-1)


@torch.no_grad()
def widen_decoder(model: nn.Module, source: dict[str, torch.Tensor], source_config,
                  source_name: Callable[[str], str] = lambda name: name, seed: int = 0) -> list[str]:
    """Fill the decoder tensors of `model` from the narrower decoder in `source` (a state dict
    of a model built from `source_config`; `source_name` maps a name of `model` to its name
    there); returns the names filled. Tensors whose shape did not change are left to the
    caller. Every level's width must be a whole multiple of the source's, with the same
    GroupNorm groups: otherwise the result would not compute what the source did."""
    cfg = model.config
    old_widths, new_widths, levels, groups = source_config.decoder_widths, cfg.decoder_widths, cfg.levels, cfg.norm_groups
    if len(old_widths) != levels or source_config.norm_groups != groups:
        raise ValueError(f"cannot widen a {len(old_widths)}-level decoder in {source_config.norm_groups} groups "
                         f"into a {levels}-level one in {groups}: only the widths may change")
    maps = [channel_map(o, n, groups) for o, n in zip(old_widths, new_widths)]
    gen = torch.Generator().manual_seed(seed)

    def level(j: str | None) -> int:
        """The level of decoder.blocks[j] / ups[j] (mid blocks: the deepest)."""
        return levels - 1 if j is None else levels - 1 - int(j)

    filled = []
    for name, dst in model.state_dict().items():
        old = source.get(source_name(name))
        if not name.startswith("decoder.") or old is None or old.shape == dst.shape:
            continue
        src = old.to(torch.float64)
        out_map = in_map = None  # channel maps of axis 0 and axis 1
        if name.startswith("decoder.conv_in."):
            out_map = maps[-1]
        elif name.startswith("decoder.conv_out."):
            in_map = maps[0]
        elif name.startswith("decoder.norm_out.to_scale_shift."):
            out_map = _scale_shift(maps[0], old_widths[0])
        elif (hit := _BLOCK.match(name)) is not None:
            i = level(hit.group(1))
            if hit.group(2).startswith("norm"):
                out_map = _scale_shift(maps[i], old_widths[i])
            else:
                out_map = in_map = maps[i]
        elif (hit := _UP.match(name)) is not None:
            i = level(hit.group(1))  # ups[j] reads level L-1-j, writes the one above
            out_map = _expand(maps[i - 1], dst.shape[0] // len(maps[i - 1]))
            in_map = maps[i]
        else:
            raise ValueError(f"widen_decoder: do not know how to widen {name} {tuple(src.shape)} -> {tuple(dst.shape)}")
        if out_map is not None:
            src = src.index_select(0, out_map)
        if in_map is not None and src.ndim > 1:
            src = src.index_select(1, in_map)
            src = src * _shares(tuple(src.shape), in_map, gen)
        if tuple(src.shape) != tuple(dst.shape):
            raise ValueError(f"widen_decoder: {name} came out {tuple(src.shape)}, expected {tuple(dst.shape)}")
        dst.copy_(src.to(dst.dtype))
        filled.append(name)
    return filled
