"""Warm-starting a new architecture from a trained model of another shape.

A training run that changes the architecture need not start from random weights: every layer
of the new model that has a counterpart in the source model (same tensor shape, found through
prefix renames such as "encoder.blocks.2." <- "encoder.blocks.1.") takes its weights. Two
kinds of shape change are bridged: a causal time kernel that grew (its new, older taps start
at zero), and more bit-planes (K). A tensor whose K-sized axis grew keeps
the source values in the first K entries; new *inputs* (axis 1: the decoder reading planes
it never saw) start at zero, so the grafted model first behaves as the source on the old
planes, and new *outputs* (axis 0: the encoder's new planes) keep their random init. A wider
decoder (`widen_from`: the source's config; a run's graft `"widen": true`) is filled by
widen.py so that it starts computing exactly what the source's decoder did. A finer time grid
(a stage whose temporal stride the new config drops) is bridged by `_regrid_time`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable

import torch
from torch import nn

if TYPE_CHECKING:
    from vtoken.models.config import TokenizerConfig


def _source_name(name: str, renames: Iterable[tuple[str, str]]) -> str:
    for new_prefix, old_prefix in renames:
        if name.startswith(new_prefix):
            return old_prefix + name[len(new_prefix):]
    return name


def _longer_in_time(dst: torch.Tensor, src: torch.Tensor) -> bool:
    """A conv weight [out, in, kt, kh, kw] whose causal time kernel grew (3 -> 4 taps, or a
    per-frame 1 -> 3)."""
    return (dst.ndim == src.ndim == 5 and dst.shape[2] > src.shape[2]
            and dst.shape[:2] == src.shape[:2] and dst.shape[3:] == src.shape[3:])


def _fits(dst: torch.Tensor, src: torch.Tensor, k_old: int, k_new: int) -> bool:
    if dst.shape == src.shape or _longer_in_time(dst, src):
        return True
    if dst.ndim != src.ndim or k_new <= k_old:  # only a grown plane count is bridged
        return False
    return all(d == s or (s == k_old and d == k_new) for d, s in zip(dst.shape, src.shape))


@torch.no_grad()
def graft(model: nn.Module, source: dict[str, torch.Tensor], renames: Iterable[tuple[str, str]] = (),
          k_old: int = 0, k_new: int = 0, silent_new_blocks: bool = False,
          widen_from: TokenizerConfig | None = None,
          new_elements: dict[str, torch.Tensor] | None = None,
          source_config: TokenizerConfig | None = None) -> dict[str, list[str]]:
    """Copy what fits from `source` (a state dict) into `model`. `renames` are (new prefix,
    source prefix) pairs, first match wins. Returns {"copied": [...], "extended": [...],
    "fresh": [...]} (names in the new model) so a run can log what it started from; with
    `silent_new_blocks` also "silenced": the entirely new residual blocks made identities;
    with `widen_from` (the source's TokenizerConfig) also "widened": the decoder tensors
    widened from the source's narrower decoder. A dict passed as `new_elements` receives, for
    each extended tensor, a bool mask of its elements with no source counterpart (a grown
    time kernel's older taps, a grown plane count's new rows and columns). With
    `source_config` (the source's TokenizerConfig), stages whose temporal stride the new model
    drops are bridged (`_regrid_time`) and listed as "regridded"."""
    renames = list(renames)
    report: dict[str, list[str]] = {"copied": [], "extended": [], "fresh": []}
    handled: set[str] = set()  # filled by a bridge before the per-tensor copy below
    if source_config is not None:
        regridded = _regrid_time(model, source, source_config, lambda name: _source_name(name, renames))
        if regridded:
            report["regridded"] = regridded
            handled.update(regridded)
    if widen_from is not None:
        from .widen import widen_decoder

        if handled:
            raise ValueError("cannot widen the decoder and change the time grid in one graft; do one, export, "
                             "then the other")
        if k_old != k_new:
            raise ValueError(f"cannot widen the decoder and grow the planes ({k_old} -> {k_new}) in one graft; "
                             "do one, export, then the other")
        widened = widen_decoder(model, source, widen_from, lambda name: _source_name(name, renames))
        report["widened"] = sorted(widened)
        handled.update(widened)
    for name, dst in model.state_dict().items():
        if name in handled:
            continue
        src = source.get(_source_name(name, renames))
        if src is None or not _fits(dst, src, k_old, k_new):
            report["fresh"].append(name)
            continue
        if dst.shape == src.shape:
            dst.copy_(src)
            report["copied"].append(name)
            continue
        if _longer_in_time(dst, src):
            # Taps run oldest to newest and the source's end at the present frame: it keeps
            # the newest taps, the new older ones start at zero (the same outputs).
            old = (slice(None), slice(None), slice(dst.shape[2] - src.shape[2], None))
            dst.zero_()
        else:
            old = tuple(slice(0, s) for s in src.shape)
            if dst.ndim > 1 and src.shape[1] != dst.shape[1]:
                dst[:, src.shape[1]:].zero_()  # new inputs start silent
        dst[old].copy_(src)
        report["extended"].append(name)
        if new_elements is not None:
            mask = torch.ones(dst.shape, dtype=torch.bool)
            mask[old] = False
            new_elements[name] = mask
    if silent_new_blocks:
        report["silenced"] = _silence_new_blocks(model, set(report["fresh"]))
    return report


@torch.no_grad()
def _regrid_time(model: nn.Module, source: dict[str, torch.Tensor], source_config: TokenizerConfig,
                 source_name) -> list[str]:
    """A finer latent time grid: for each stage that is temporal in the source and not in the
    new model (temporal_down True -> False), the encoder's strided downsampling kernel becomes
    one per-frame tap, the sum of the source's taps, so on a still scene (all frames equal) it
    computes what the source's did; the decoder's depth-to-space conv, which made 2 frames per
    input frame, keeps the channels of the later one (the frame the encoder's stride was
    aligned to, causal layout). Returns the names it filled."""
    new_config = model.config
    if len(source_config.temporal_down) != len(new_config.temporal_down):
        return []
    state = model.state_dict()
    levels = len(new_config.temporal_down) + 1
    filled = []
    for i, (was, now) in enumerate(zip(source_config.temporal_down, new_config.temporal_down)):
        if was == now:
            continue
        if not was:
            raise ValueError(f"graft can make the time grid finer, not coarser: stage {i} has no temporal "
                             f"stride in the source ({source_config.temporal_down} -> {new_config.temporal_down})")
        name = f"encoder.downs.{i}.conv.conv.weight"
        state[name].copy_(source[source_name(name)].sum(dim=2, keepdim=True))
        bias = f"encoder.downs.{i}.conv.conv.bias"
        state[bias].copy_(source[source_name(bias)])
        filled += [name, bias]
        rs2 = 4 if new_config.spatial_down[i] else 1
        for suffix in ("weight", "bias"):
            name = f"decoder.ups.{levels - 2 - i}.conv.conv.{suffix}"
            dst, src = state[name], source[source_name(name)]
            # depth_to_space's channel order is (out, time phase, space phase).
            dst.copy_(src.reshape(dst.shape[0] // rs2, 2, rs2, *src.shape[1:])[:, 1].reshape(dst.shape))
            filled.append(name)
    return filled


@torch.no_grad()
def _silence_new_blocks(model: nn.Module, fresh: set[str]) -> list[str]:
    """Zero the last convolution of every ResBlock none of whose tensors came from the source:
    its output is then skip(x) + 0 = x (same width), the identity."""
    from vtoken.models.layers import ResBlock

    silenced = []
    for name, module in model.named_modules():
        if not isinstance(module, ResBlock) or not isinstance(module.skip, nn.Identity):
            continue
        own = [f"{name}.{p}" for p, _ in module.named_parameters()] + [f"{name}.{b}" for b, _ in module.named_buffers()]
        if own and all(n in fresh for n in own):
            for p in module.conv2.parameters():
                p.zero_()
            silenced.append(name)
    return silenced
