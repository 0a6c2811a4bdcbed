"""benchmarks/model_cost.py: MACs counted from the convolutions a model runs."""

from __future__ import annotations

import torch

from scripts import load_benchmark


def test_conv_macs_counts_a_causal_conv_by_hand():
    cost = load_benchmark("model_cost")
    from vtoken.models.layers import CausalConv3d

    conv = CausalConv3d(4, 8, (3, 3, 3), stride=(2, 1, 1)).eval()
    x = torch.rand(1, 4, 5, 8, 8)  # causal, stride 2 in time: 5 frames -> 3
    assert cost.conv_macs(conv, lambda: conv(x)) == (8 * 3 * 8 * 8) * 4 * 27


def test_a_wider_decoder_costs_more_to_decode_and_the_same_to_encode():
    cost = load_benchmark("model_cost")
    from vtoken.models import Tokenizer, TokenizerConfig

    narrow = TokenizerConfig.preset("vtoken-patch", bits=8, token_bits=8)
    a = cost.model_cost(Tokenizer(narrow).eval(), 5, 32, 16)
    b = cost.model_cost(Tokenizer(narrow.replace(decoder_channels=(64, 48, 64))).eval(), 5, 32, 16)
    assert b["encode_mac_per_pixel"] == a["encode_mac_per_pixel"] > 0
    assert b["decode_mac_per_pixel"] > 1.5 * a["decode_mac_per_pixel"]
    assert b["encoder_parameters"] == a["encoder_parameters"] and b["decoder_parameters"] > a["decoder_parameters"]
