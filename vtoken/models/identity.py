"""ModelIdentity: how a model is named everywhere (files, .mvt headers): its name plus the
sha256 of its safetensors file, never an index. No torch here, so containers can use it."""

from __future__ import annotations

from typing import NamedTuple


class ModelIdentity(NamedTuple):
    name: str
    sha256: str  # 64 lowercase hex digits of the weights file

    @property
    def short(self) -> str:
        """`name-sha8`, the stem of the model's files."""
        return f"{self.name}-{self.sha256[:8]}"
