"""Parameters and multiply-accumulates per pixel of a model's encoder and decoder.

    python benchmarks/model_cost.py [--model NAME_OR_PATH ...] [--size 640x360] [--frames 33]

MACs are counted from every convolution the model actually runs on a clip of that size
(output elements x input channels per group x kernel volume), so strides, depth-to-space and
the per-frame levels are all accounted for; norms, activations and the entropy coder are not
(their cost is in benchmarks/speed.py's wall clock). Pixels are frames x width x height."""

from __future__ import annotations

import argparse

import torch
from torch import nn

from vtoken.models import load_model
from vtoken.models.layers import CausalConv3d


def conv_macs(module: nn.Module, run) -> int:
    """MACs of every convolution inside `module` during run(). A CausalConv3d is counted as a
    whole: on the CPU it calls oneDNN directly, so its inner Conv3d's hooks never fire."""
    total = 0

    def count(layer: nn.Module, _inputs, output: torch.Tensor) -> None:
        nonlocal total
        conv = layer.conv if isinstance(layer, CausalConv3d) else layer
        kt, kh, kw = conv.kernel_size
        total += output.numel() * (conv.in_channels // conv.groups) * kt * kh * kw

    inner = {id(m.conv) for m in module.modules() if isinstance(m, CausalConv3d)}
    hooks = [m.register_forward_hook(count) for m in module.modules()
             if isinstance(m, CausalConv3d) or (isinstance(m, nn.Conv3d) and id(m) not in inner)]
    try:
        with torch.no_grad():
            run()
    finally:
        for h in hooks:
            h.remove()
    return total


def model_cost(model, frames: int, width: int, height: int) -> dict:
    video = torch.zeros(1, 3, frames, height, width)
    pixels = frames * width * height
    z = []
    enc = conv_macs(model.encoder, lambda: z.append(model.encode(video)))
    bits = (z[0] >= 0).to(torch.uint8)
    # The decoder's AdaptiveGroupNorm convs run at the latent's spatial size (at every frame
    # in the per-frame levels): counted as they run.
    dec = conv_macs(model.decoder, lambda: model.decode_bits(bits))
    params = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    return {"parameters": params(model), "encoder_parameters": params(model.encoder),
            "decoder_parameters": params(model.decoder),
            "encode_mac_per_pixel": round(enc / pixels), "decode_mac_per_pixel": round(dec / pixels)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", action="append", help="model name or path (repeatable; default: the shipped default)")
    ap.add_argument("--size", default="640x360", help="WIDTHxHEIGHT, multiples of the model's spatial factor")
    ap.add_argument("--frames", type=int, default=33, help="1 + 4n frames")
    args = ap.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    print("| model | parameters (encoder / decoder) | MAC per pixel, encode | MAC per pixel, decode |")
    print("|---|---|---|---|")
    for name in args.model or [None]:
        model = load_model(name).eval()
        c = model_cost(model, args.frames, width, height)
        label = name or (model.identity.name if model.identity else "default")
        print(f"| {label} | {c['parameters']:,} ({c['encoder_parameters']:,} / {c['decoder_parameters']:,}) "
              f"| {c['encode_mac_per_pixel']:,} | {c['decode_mac_per_pixel']:,} |")


if __name__ == "__main__":
    main()
