"""Per-stream causal state: what a long video carries from one chunk to the next.

The model holds no stream state. A `StreamState` belongs to one stream through one half of
the model (the encoder or the decoder): each stateful layer keeps its slot in it (a
CausalConv3d the last input frames its next windows read, a first-chunk layer whether a
chunk has gone through). `Tokenizer.encode(video, state=...)` and the other entry points
bind the state for the duration of that one synchronous call through a ContextVar, which the
layers read. Binding never spans a `yield`, and every thread has its own context, so one
model serves any number of threads and interleaved generators, each with its own state.

Without a state (training, a single clip) the layers behave as they always did: frame 0 is
padded by replication and nothing is remembered.
"""

from __future__ import annotations

import contextlib
import itertools
from contextvars import ContextVar

_CURRENT: ContextVar["StreamState | None"] = ContextVar("vtoken_stream_state", default=None)
# Layer slots are numbered at construction; a deep copy of a model (e.g. a CPU copy of a GPU
# model) keeps its layers' numbers, so a state moves between the two with `to()`.
_SLOTS = itertools.count()


def new_slot() -> int:
    return next(_SLOTS)


class StreamState:
    """The causal state of one stream through the encoder or the decoder.

    Create one per stream (a new one, or `reset()`, at a key chunk); pass it to every call
    of that stream, in order. Not safe to share between two streams or two threads at once;
    `copy()` is a cheap snapshot (slot values are replaced, never modified in place), which
    is how a failed chunk is retried."""

    __slots__ = ("_slots", "role", "chunks")

    def __init__(self) -> None:
        self._slots: dict[int, object] = {}
        self.role: str | None = None   # "encode" or "decode": set by the first call
        self.chunks = 0                # calls gone through since the start of the stream

    @property
    def continuing(self) -> bool:
        """True when the next call continues the stream (its chunk has 4n frames)."""
        return self.chunks > 0

    def claim(self, role: str) -> None:
        """Tie the state to one half of the model; a decoder state given to the encoder is a bug."""
        if self.role is None:
            self.role = role
        elif self.role != role:
            raise ValueError(f"this StreamState belongs to a {self.role} stream, not a {role} one; "
                             "the encoder and the decoder need separate states")

    def reset(self) -> None:
        self._slots.clear()
        self.chunks = 0

    def get(self, slot: int, default=None):
        return self._slots.get(slot, default)

    def set(self, slot: int, value) -> None:
        self._slots[slot] = value

    def copy(self) -> "StreamState":
        new = StreamState()
        new._slots = dict(self._slots)
        new.role, new.chunks = self.role, self.chunks
        return new

    def assign(self, other: "StreamState") -> None:
        """Take over `other`'s contents (e.g. after a chunk ran on another device)."""
        self._slots = dict(other._slots)
        self.role, self.chunks = other.role, other.chunks

    def to(self, device) -> "StreamState":
        """A copy with every tensor moved to `device`."""
        new = self.copy()
        new._slots = {k: v.to(device) if hasattr(v, "to") else v for k, v in self._slots.items()}
        return new


def current() -> StreamState | None:
    """The state bound to the call in progress in this thread (None outside a stream)."""
    return _CURRENT.get()


@contextlib.contextmanager
def bound(state: StreamState | None):
    """Bind `state` for one synchronous call (never hold this across a yield)."""
    token = _CURRENT.set(state)
    try:
        yield state
    finally:
        _CURRENT.reset(token)
