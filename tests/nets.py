"""Small models for the model tests."""

import torch

from vtoken.models import Tokenizer, TokenizerConfig
from vtoken.models.layers import AdaptiveGroupNorm


# The patch-stem architecture at test size: 6 planes, 8x spatial and 4x temporal factors.
PATCH = TokenizerConfig.preset("vtoken-patch", channels=(8, 8, 16), bits=6, entropy_group_size=3, norm_groups=4)


def seeded_model(config, seed: int = 0) -> Tokenizer:
    """A Tokenizer in eval mode with seeded weights. AdaGN starts as identity modulation;
    it is randomised here so that tests see the decoder's conditioning at work too."""
    torch.manual_seed(seed)
    m = Tokenizer(config).eval()
    for mod in m.modules():
        if isinstance(mod, AdaptiveGroupNorm):
            torch.nn.init.normal_(mod.to_scale_shift.weight, std=0.1)
    return m
