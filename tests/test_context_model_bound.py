"""benchmarks/context_model_bound.py: the learned model reads only what a decoder knows.

A bound on code length is only a bound if the predictor of a bit cannot see that bit or
anything decoded after it; these tests change exactly those bits and require the logits of
the positions being predicted to stay put."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from scripts import load_benchmark

K, H, W = 6, 8, 10


def _logits(bound, net, cur, prev, k, p):
    masks = bound.pass_masks(H, W)
    ks, ps = torch.tensor([k]), torch.tensor([p])
    with torch.no_grad():
        out = net(bound.inputs(cur, prev, ks, ps, masks), ks, ps)[0]
    return out[masks[p] > 0]


@pytest.mark.parametrize("p", [0, 1, 2])
def test_bits_a_decoder_has_not_decoded_yet_do_not_move_the_prediction(p):
    bound = load_benchmark("context_model_bound")
    torch.manual_seed(0)
    net = bound.BitContext(K, width=8).eval()
    for param in net.parameters():  # large weights: any leak shows
        param.data.normal_(0, 1)
    gen = np.random.default_rng(1)
    cur = torch.from_numpy(gen.integers(0, 2, (K, H, W)).astype(np.float32) * 2 - 1)
    prev = torch.from_numpy(gen.integers(0, 2, (K, H, W)).astype(np.float32) * 2 - 1)
    k = 3
    base = _logits(bound, net, cur, prev, k, p)

    masks = bound.pass_masks(H, W)
    unknown_here = masks[p:].sum(0) > 0  # plane k at this pass and the passes after it
    cur2 = cur.clone()
    cur2[k + 1:] *= -1  # later planes of this frame
    cur2[k][unknown_here] *= -1
    prev2 = prev.clone()
    prev2[k + 1:] *= -1  # later planes of the previous frame
    assert torch.equal(_logits(bound, net, cur2, prev2, k, p), base)

    # and what it may read does move it: a check that could not fail would prove nothing
    cur3 = cur.clone()
    cur3[:k] *= -1
    assert not torch.equal(_logits(bound, net, cur3, prev, k, p), base)
    prev3 = prev.clone()
    prev3[k] *= -1
    assert not torch.equal(_logits(bound, net, cur, prev3, k, p), base)
    if p:
        cur4 = cur.clone()
        cur4[k][masks[:p].sum(0) > 0] *= -1  # plane k's earlier passes
        assert not torch.equal(_logits(bound, net, cur4, prev, k, p), base)


def test_the_network_code_length_is_the_cross_entropy_of_its_logits():
    bound = load_benchmark("context_model_bound")
    torch.manual_seed(0)
    net = bound.BitContext(K, width=8).eval()
    chunk = np.random.default_rng(2).integers(0, 2, (K, 2, H, W)).astype(np.uint8)
    cost = bound.cnn_bits(net, chunk)
    # by hand: every plane, pass and frame through the same inputs
    masks = bound.pass_masks(H, W)
    s = torch.from_numpy(chunk.astype(np.float32) * 2 - 1)
    want = np.zeros(K)
    for t in range(2):
        prev = s[:, t - 1] if t else None
        for k in range(K):
            for p in range(3):
                logit = _logits(bound, net, s[:, t], prev, k, p)
                bits = (s[k, t][masks[p] > 0] > 0).float()
                want[k] += float(torch.nn.functional.binary_cross_entropy_with_logits(logit, bits, reduction="sum")) / np.log(2)
    np.testing.assert_allclose(cost, want, rtol=1e-5)
