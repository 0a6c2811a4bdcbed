"""TokenizerConfig: JSON round trip, validation messages, presets and their sizes."""

import json

import pytest

from vtoken.models import PRESETS, Tokenizer, TokenizerConfig, count_parameters


def test_json_round_trip():
    cfg = TokenizerConfig.preset("vtoken-tiny", bits=12)
    text = json.dumps(cfg.to_dict())
    again = TokenizerConfig.from_dict(json.loads(text))
    assert again == cfg and again.bits == 12
    assert TokenizerConfig.from_json(cfg.to_json()) == cfg


def test_defaults_match_the_paper_layout():
    cfg = TokenizerConfig()
    assert cfg.bits == 18 and cfg.spatial_factor == 8 and cfg.temporal_factor == 4
    assert cfg.conv3d == (False, False, True, True) and cfg.temporal_down == (False, True, True)


@pytest.mark.parametrize(
    "changes,allowed",
    [
        ({"bits": 0}, "allowed: 1..128"),
        ({"bits": 129}, "allowed: 1..128"),
        ({"channels": (32, 64, 100, 256)}, "multiples of norm_groups"),
        ({"res_blocks": (1, 1)}, "one non-negative count per level"),
        ({"decoder_res_blocks": (1, 1)}, "empty \\(as res_blocks\\) or one non-negative count per level"),
        ({"decoder_channels": (32, 64)}, "decoder_channels=.*one width per level"),
        ({"decoder_channels": (32, 64, 196, 256)}, "decoder_channels=.*multiple of norm_groups=8"),
        ({"conv3d": (True,)}, "one True/False per level"),
        ({"temporal_down": (True,)}, "one True/False per downsampling"),
        ({"spatial_factor": 16}, "allowed: 8"),
        ({"entropy_group_size": 20}, "allowed: 1..16"),
    ],
)
def test_validation_names_allowed_values(changes, allowed):
    with pytest.raises(ValueError, match=allowed):
        TokenizerConfig(**changes)


def test_unknown_fields_and_presets():
    with pytest.raises(ValueError, match="allowed"):
        TokenizerConfig.from_dict({"bitz": 3})
    with pytest.raises(ValueError, match="vtoken-base"):
        TokenizerConfig.preset("nope")
    # replace() re-derives the factors when the levels change
    three = TokenizerConfig().replace(channels=(32, 64, 128), res_blocks=(1, 1, 1), conv3d=(0, 1, 1), temporal_down=(1, 1))
    assert three.spatial_factor == 4 and three.temporal_factor == 4


def test_preset_sizes():
    base = count_parameters(Tokenizer(PRESETS["vtoken-base"]))
    tiny = count_parameters(Tokenizer(PRESETS["vtoken-tiny"]))
    assert 15e6 <= base <= 20e6  # 20M params = 40 MB in fp16, the zoo's size limit
    assert 0.5e6 <= tiny <= 2e6


def test_decoder_res_blocks_is_stored_only_when_used():
    """A config without its own decoder depth serializes as before the field existed (the
    model's hash and the golden stream depend on it); one with it round-trips."""
    plain = TokenizerConfig.preset("vtoken-patch")
    assert "decoder_res_blocks" not in plain.to_dict()
    deeper = plain.replace(decoder_res_blocks=(2, 1, 1))
    assert deeper.to_dict()["decoder_res_blocks"] == [2, 1, 1]
    assert TokenizerConfig.from_json(deeper.to_json()) == deeper
    assert deeper.decoder_blocks == (2, 1, 1) and plain.decoder_blocks == plain.res_blocks


def test_decoder_channels_is_stored_only_when_used_and_builds_a_wider_decoder():
    plain = TokenizerConfig.preset("vtoken-patch")
    assert "decoder_channels" not in plain.to_dict() and plain.decoder_widths == plain.channels
    wide = plain.replace(decoder_channels=(64, 48, 128))
    assert wide.to_dict()["decoder_channels"] == [64, 48, 128]
    assert TokenizerConfig.from_json(wide.to_json()) == wide
    model = Tokenizer(wide)
    assert model.decoder.conv_out.conv.in_channels == 64 and model.decoder.conv_in.conv.out_channels == 128
    assert model.encoder.conv_out.conv.in_channels == 64  # the encoder keeps `channels`
