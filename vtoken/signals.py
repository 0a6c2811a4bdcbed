"""SIGINT, SIGTERM and SIGHUP end a command the same way Ctrl-C does.

Python turns only SIGINT into an exception; SIGTERM (timeout, kill, container stops) and
SIGHUP (a closed terminal) would kill the process before the atomic-output cleanup runs and
leave hidden `.part` files. Here all three raise `Interrupted` in the main thread, so every
`finally` / `except BaseException` cleanup runs, and the CLI exits with 128 + the signal.
"""

from __future__ import annotations

import signal
import threading

HANDLED = tuple(s for s in (getattr(signal, n, None) for n in ("SIGINT", "SIGTERM", "SIGHUP")) if s is not None)


class Interrupted(KeyboardInterrupt):
    """A handled signal arrived; `signum` says which (a KeyboardInterrupt, so code that cleans
    up on Ctrl-C cleans up on these too)."""

    def __init__(self, signum: int):
        super().__init__(f"signal {signum}")
        self.signum = int(signum)

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


_state = {"caught": None}


def _handler(signum, _frame):
    if _state["caught"] is not None:
        return  # already unwinding: a second signal must not cut the cleanup short
    _state["caught"] = signum
    raise Interrupted(signum)


def install() -> bool:
    """Route the handled signals to `Interrupted` (main thread only; returns whether it did)."""
    if threading.current_thread() is not threading.main_thread():
        return False
    _state["caught"] = None
    for sig in HANDLED:
        signal.signal(sig, _handler)
    return True


def exit_code(exc: BaseException) -> int:
    """128 + the signal for an interruption (130 for a plain KeyboardInterrupt)."""
    return getattr(exc, "exit_code", 128 + signal.SIGINT)


def leave(code: int) -> None:
    """Exit now with `code`, once the exception has unwound every output's cleanup. A normal
    interpreter exit would wait on, or tear down under, stage threads still inside the model
    (a crash at shutdown), so the process ends here after flushing its streams."""
    import contextlib
    import os
    import sys

    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


def deferred():
    """Context manager: the handled signals wait until the block ends (a few renames that must
    happen all together or not at all). Where signal masks are unavailable it does nothing."""
    import contextlib

    @contextlib.contextmanager
    def block():
        mask = getattr(signal, "pthread_sigmask", None)
        if mask is None or threading.current_thread() is not threading.main_thread():
            yield
            return
        old = mask(signal.SIG_BLOCK, HANDLED)
        try:
            yield
        finally:
            mask(signal.SIG_SETMASK, old)

    return block()
