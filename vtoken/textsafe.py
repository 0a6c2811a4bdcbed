"""Text from a file (model names, metadata, warnings that quote them) shown on a terminal.

A .mvt header is attacker-controlled: an escape sequence in its model name could rewrite the
terminal, move the cursor or hide a line. `escape` makes every control character, and the
Unicode characters that reorder or hide text, visible as a Python-style escape."""

from __future__ import annotations

import re

# C0 and C1 controls, DEL, and the bidi / invisible format characters (Trojan Source).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")


def _visible(match: re.Match) -> str:
    c = match.group()
    return {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(c) or (
        f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}")


def escape(text) -> str:
    """`text` (any object, via str) with unsafe characters written as visible escapes."""
    return _UNSAFE.sub(_visible, str(text))
