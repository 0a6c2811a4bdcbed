"""TokenizerConfig: the architecture of a tokenizer, stored as JSON beside its weights so a
saved model rebuilds itself without code or pickle.

Levels are stages of the trunk. The input is first folded into channels by `patch_size`
(pixel-unshuffle: a p x p patch of RGB becomes 3 p^2 channels, so no convolution runs at full
resolution; the decoder ends with the inverse depth-to-space). Between consecutive levels there
is one strided downsampling (encoder) / depth-to-space upsampling (decoder): 2x in space where
`spatial_down[i]` says so (all, by default), 2x in time where `temporal_down[i]` says so."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

CONFIG_VERSION = 1
# Bit-planes per latent position: at most what a .mvt reader accepts (SPEC section 8,
# bitstream Limits.max_planes; a test keeps the two equal). Not imported from there: this
# module must load from a plain checkout on PYTHONPATH, where vtoken.bitstream does not exist.
MAX_BITS = 128
# Planes a token index may hold: an int64 with room to spare.
MAX_TOKEN_BITS = 62
# Fields added after models were shipped: left out of the JSON while at their default.
_STORED_WHEN_USED = ("decoder_res_blocks", "decoder_channels", "decoder_temporal_blocks", "temporal_down_kernel",
                     "plane_heads")


def _ints(value: Any) -> tuple[int, ...]:
    return tuple(int(v) for v in value)


def _bools(value: Any) -> tuple[bool, ...]:
    return tuple(bool(v) for v in value)


@dataclass(frozen=True, kw_only=True)
class TokenizerConfig:
    """Keyword-only fields; `validate()` runs on construction."""

    bits: int = 18  # K: LFQ bits per latent position = bit-planes the codec can code
    # Planes that make a token for language models (vocabulary 2**token_bits; 0 = all K, at
    # most MAX_TOKEN_BITS). A codec model may code more planes than a token needs: the rest
    # refine the picture.
    token_bits: int = 0
    # Width per level (full, 1/2, 1/4, 1/8): the encoder's, and the decoder's unless
    # decoder_channels says otherwise.
    channels: tuple[int, ...] = (32, 64, 192, 256)
    res_blocks: tuple[int, ...] = (1, 1, 1, 1)  # residual blocks per level (encoder and decoder)
    # The decoder's own residual blocks per level, when it is deeper than the encoder (empty:
    # res_blocks). Decoding is where a codec can spend capacity: the encoder's bits stay put.
    decoder_res_blocks: tuple[int, ...] = ()
    # The decoder's own width per level (empty: channels). Capacity spent where the picture is
    # made, leaving the bits, and so the entropy model, as they are.
    decoder_channels: tuple[int, ...] = ()
    # Causal temporal residual blocks (two 3x1x1 convs each: a pixel position looks at itself
    # in the four frames before) at the input of the decoder's per-frame levels, right after
    # its last temporal depth-to-space. Without them those levels never mix frames, so the
    # first frame a latent frame unfolds into cannot borrow from the better decoded one before.
    decoder_temporal_blocks: int = 0
    # Time taps of the encoder's temporal downsamplings (3 or 4). With 3 taps and stride 2,
    # window j reads frames 2j-2, 2j-1, 2j: an even frame enters two windows, an odd one a
    # single one, and the odd frames decode worse. 4 taps (2j-3 .. 2j) read every frame twice.
    temporal_down_kernel: int = 3
    # Which levels use 3x3x3 causal convs; the others use per-frame (1,3,3) convs. Full and
    # half resolution are 2D so 1080p decoding stays affordable (DESIGN.md, speed table).
    conv3d: tuple[bool, ...] = (False, False, True, True)
    # One entry per downsampling (len(channels) - 1): is it also 2x in time? The deepest
    # ones, so temporal mixing happens where it is cheap.
    temporal_down: tuple[bool, ...] = (False, True, True)
    # One entry per downsampling: is it 2x in space? Empty means every one (the classic
    # pyramid); a False one changes only the frame rate (or nothing) between two levels.
    spatial_down: tuple[bool, ...] = ()
    # Pixel-unshuffle factor of the input (1 = none). With 4, the first level works at 1/4
    # resolution on 48 channels: the cheap way to spend width where it buys quality.
    patch_size: int = 1
    mid_blocks: int = 0  # extra residual blocks at the latent resolution
    # Encoder output heads by kept plane count (0: one head for all). A stream cut after any
    # plane decodes, so one set of signs must serve every cut; heads let the encoder send
    # other signs for a stream it expects to keep 8 planes than for one keeping 64. Head b, a
    # per-frame residual on the latent (3x3 conv, SiLU, 1x1 conv), serves the plane counts
    # whose ceil(log2) is b (the last head also all above): 7 heads cover 1, 2, 3-4, ..., 33-64.
    # Measured on the default model (model card, levers 83 and 83b): no gain, and the
    # encoder's search finds one set of signs about as good at 8 planes and at 64 as either
    # search alone, so the cuts hardly compete for the signs. No shipped model has heads.
    plane_heads: int = 0
    norm_groups: int = 8
    in_channels: int = 3
    entropy_group_size: int = 9  # LFQ entropy penalty computed over sub-groups of this many bits
    version: int = CONFIG_VERSION
    # Documented, derived values; stored so a reader sees them without recomputing.
    spatial_factor: int = field(default=0)
    temporal_factor: int = field(default=0)

    def __post_init__(self) -> None:
        object.__setattr__(self, "channels", _ints(self.channels))
        object.__setattr__(self, "res_blocks", _ints(self.res_blocks))
        object.__setattr__(self, "decoder_res_blocks", _ints(self.decoder_res_blocks))
        object.__setattr__(self, "decoder_channels", _ints(self.decoder_channels))
        object.__setattr__(self, "conv3d", _bools(self.conv3d))
        object.__setattr__(self, "temporal_down", _bools(self.temporal_down))
        if self.token_bits == 0:
            object.__setattr__(self, "token_bits", min(self.bits, MAX_TOKEN_BITS))
        if not self.spatial_down:
            object.__setattr__(self, "spatial_down", (True,) * (len(self.channels) - 1))
        object.__setattr__(self, "spatial_down", _bools(self.spatial_down))
        spatial = self.patch_size * 2 ** sum(self.spatial_down)
        temporal = 2 ** sum(self.temporal_down)
        # 0 means "derive"; an explicit value must agree with the level structure.
        if self.spatial_factor == 0:
            object.__setattr__(self, "spatial_factor", spatial)
        if self.temporal_factor == 0:
            object.__setattr__(self, "temporal_factor", temporal)
        self.validate()

    @property
    def levels(self) -> int:
        return len(self.channels)

    @property
    def per_frame_levels(self) -> int:
        """How many leading (highest-resolution) levels work frame by frame: per-frame (1,3,3)
        convs, per-frame norms and no temporal resampling between them."""
        p = 0
        while p < self.levels and not self.conv3d[p] and (p == 0 or not self.temporal_down[p - 1]):
            p += 1
        return p

    @property
    def decoder_blocks(self) -> tuple[int, ...]:
        """Residual blocks per level in the decoder."""
        return self.decoder_res_blocks or self.res_blocks

    @property
    def decoder_widths(self) -> tuple[int, ...]:
        """Channels per level in the decoder."""
        return self.decoder_channels or self.channels

    def validate(self) -> None:
        """Raise ValueError naming the allowed values."""
        if self.version != CONFIG_VERSION:
            raise ValueError(f"config version {self.version} is not supported; allowed: {CONFIG_VERSION}")
        if not 1 <= self.bits <= MAX_BITS:
            raise ValueError(f"bits={self.bits} is out of range; allowed: 1..{MAX_BITS}")
        if not 1 <= self.token_bits <= min(self.bits, MAX_TOKEN_BITS):
            raise ValueError(
                f"token_bits={self.token_bits} is out of range; allowed: 1..{min(self.bits, MAX_TOKEN_BITS)}")
        levels = len(self.channels)
        if levels < 1:
            raise ValueError("channels must list at least one level width, e.g. (32, 64, 192, 256)")
        if any(c < 1 for c in self.channels):
            raise ValueError(f"channels={self.channels}: every width must be a positive integer")
        if any(c % self.norm_groups for c in self.channels):
            raise ValueError(
                f"channels={self.channels} must all be multiples of norm_groups={self.norm_groups}"
            )
        if len(self.res_blocks) != levels or any(r < 0 for r in self.res_blocks):
            raise ValueError(
                f"res_blocks={self.res_blocks}: allowed is one non-negative count per level ({levels} levels)"
            )
        if self.decoder_res_blocks and (len(self.decoder_res_blocks) != levels or min(self.decoder_res_blocks) < 0):
            raise ValueError(
                f"decoder_res_blocks={self.decoder_res_blocks}: allowed is empty (as res_blocks) or one "
                f"non-negative count per level ({levels} levels)"
            )
        if self.decoder_channels and (len(self.decoder_channels) != levels
                                      or any(c < 1 or c % self.norm_groups for c in self.decoder_channels)):
            raise ValueError(
                f"decoder_channels={self.decoder_channels}: allowed is empty (as channels) or one width per "
                f"level ({levels} levels), each a positive multiple of norm_groups={self.norm_groups}"
            )
        if len(self.conv3d) != levels:
            raise ValueError(f"conv3d={self.conv3d}: allowed is one True/False per level ({levels} levels)")
        if len(self.temporal_down) != levels - 1:
            raise ValueError(
                f"temporal_down={self.temporal_down}: allowed is one True/False per downsampling "
                f"({levels - 1} for {levels} levels)"
            )
        if len(self.spatial_down) != levels - 1:
            raise ValueError(
                f"spatial_down={self.spatial_down}: allowed is one True/False per downsampling "
                f"({levels - 1} for {levels} levels)"
            )
        if self.temporal_down_kernel not in (3, 4):
            raise ValueError(f"temporal_down_kernel={self.temporal_down_kernel}: allowed: 3, 4")
        if self.decoder_temporal_blocks < 0:
            raise ValueError(f"decoder_temporal_blocks={self.decoder_temporal_blocks}: allowed is 0 or more")
        if self.decoder_temporal_blocks:
            p = self.per_frame_levels
            if not 0 < p < levels or not self.temporal_down[p - 1]:
                raise ValueError(
                    f"decoder_temporal_blocks={self.decoder_temporal_blocks} needs per-frame levels reached by a "
                    f"temporal upsampling (conv3d={self.conv3d}, temporal_down={self.temporal_down}); allowed: 0"
                )
        if self.patch_size not in (1, 2, 4, 8):
            raise ValueError(f"patch_size={self.patch_size}: allowed: 1, 2, 4, 8")
        if self.mid_blocks < 0:
            raise ValueError(f"mid_blocks={self.mid_blocks}: allowed is 0 or more")
        if not 0 <= self.plane_heads <= 8:
            raise ValueError(f"plane_heads={self.plane_heads}: allowed: 0..8")
        if self.norm_groups < 1:
            raise ValueError(f"norm_groups={self.norm_groups}: allowed is 1 or more")
        if self.in_channels < 1:
            raise ValueError(f"in_channels={self.in_channels}: allowed is 1 or more")
        if not 1 <= self.entropy_group_size <= 16:
            raise ValueError(f"entropy_group_size={self.entropy_group_size}: allowed: 1..16")
        spatial = self.patch_size * 2 ** sum(self.spatial_down)
        temporal = 2 ** sum(self.temporal_down)
        if self.spatial_factor != spatial:
            raise ValueError(
                f"spatial_factor={self.spatial_factor} does not match patch_size={self.patch_size} and "
                f"spatial_down={self.spatial_down}; allowed: {spatial}"
            )
        if self.temporal_factor != temporal:
            raise ValueError(
                f"temporal_factor={self.temporal_factor} does not match temporal_down="
                f"{self.temporal_down}; allowed: {temporal}"
            )

    # -- JSON ------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        for key, value in out.items():
            if isinstance(value, tuple):
                out[key] = list(value)
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        for key in _STORED_WHEN_USED:
            if getattr(self, key) == defaults[key]:
                # Absent unless used: a model saved before the field existed serializes (and
                # so hashes) as it did.
                del out[key]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TokenizerConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown tokenizer config fields {unknown}; allowed: {sorted(known)}")
        return cls(**data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "TokenizerConfig":
        return cls.from_dict(json.loads(text))

    def replace(self, **changes: Any) -> "TokenizerConfig":
        """A copy with `changes`; derived factors are recomputed unless given explicitly."""
        data = self.to_dict()
        data["spatial_factor"] = data["temporal_factor"] = 0
        if "bits" in changes and "token_bits" not in changes:
            data["token_bits"] = 0  # follows the new K
        if len(changes.get("channels", self.channels)) != self.levels and "spatial_down" not in changes:
            data["spatial_down"] = []  # the default for the new level count
        data.update(changes)
        return type(self)(**data)

    # -- presets ---------------------------------------------------------------------------
    @classmethod
    def preset(cls, name: str, **overrides: Any) -> "TokenizerConfig":
        if name not in PRESETS:
            raise ValueError(f"unknown tokenizer preset {name!r}; allowed: {sorted(PRESETS)}")
        return PRESETS[name].replace(**overrides)


PRESETS: dict[str, TokenizerConfig] = {
    # The GPU model (17.6M parameters, 35 MB in fp16: the zoo allows 40 MB): 2D convs at full
    # and 1/2 resolution, 3D below (see DESIGN.md speed table).
    "vtoken-base": TokenizerConfig(),
    # Trainable on a CPU in half an hour (1.26M parameters); same structure, narrower.
    "vtoken-tiny": TokenizerConfig(
        channels=(16, 32, 48, 64), res_blocks=(1, 1, 1, 1), mid_blocks=0, norm_groups=8
    ),
    # The CPU codec model: a 4x4 pixel-unshuffle stem, so nothing runs at full or half
    # resolution (on the CPU those 16-32 channel convolutions, norms and activations were
    # most of the time and little of the capacity); a per-frame level at 1/4, then 3D levels
    # at 1/4 (half frame rate) and 1/8 (quarter frame rate). 32 bit-planes: the first 18
    # are the tokenizer's vocabulary, the rest refine the picture for higher rates.
    "vtoken-patch": TokenizerConfig(
        bits=32, token_bits=18, channels=(32, 48, 64), res_blocks=(1, 1, 1), conv3d=(False, True, True),
        spatial_down=(False, True), temporal_down=(True, True), patch_size=4, norm_groups=8,
    ),
}
