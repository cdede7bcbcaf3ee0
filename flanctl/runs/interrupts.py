"""Ctrl-C during a run: the first one asks the loop to stop at its next step boundary, the second
one stops the process at once.

Why a flag and not KeyboardInterrupt: the training loop spends its time inside Keras, whose
`pythonify_logs` swallows exceptions with a bare `except`, so a KeyboardInterrupt raised while
the main thread waits on the loss value is lost there and the run goes on. A handler that only
sets a flag cannot be swallowed; the loop looks at it between steps, writes a checkpoint and
raises `Interrupted`. A second Ctrl-C leaves with `os._exit(130)`: every file flanctl writes is
written to a temporary name and renamed, and the run lock is a `flock` the kernel drops, so
stopping between two system calls leaves the last complete checkpoint and state in place.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator

from flanctl.errors import FlanctlError

#: The exit status of a process stopped by Ctrl-C (128 + SIGINT), as shells report it.
EXIT_INTERRUPTED = 130


class Interrupted(FlanctlError):
    """The user stopped the command with Ctrl-C; the message says where and how to go on. Exit 130."""

    exit_code = EXIT_INTERRUPTED


class StopRequest:
    """Whether Ctrl-C was pressed since `graceful_interrupts()` was entered."""

    def __init__(self) -> None:
        self.requested = False


def _say(text: str) -> None:
    # os.write: print() is not safe inside a signal handler (it may hold the stream's lock).
    with contextlib.suppress(OSError):
        os.write(2, (text + "\n").encode())


@contextlib.contextmanager
def graceful_interrupts(what: str = "training") -> Iterator[StopRequest]:
    """Install the two-stage Ctrl-C handler for the duration of the block (main thread only;
    elsewhere the request never fires and Ctrl-C keeps Python's default)."""
    stop = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum, frame):
        if stop.requested:
            _say(f"interrupted again: {what} stopped at once; the last checkpoint is kept, run the same `flanctl apply` to resume")
            os._exit(EXIT_INTERRUPTED)
        stop.requested = True
        _say(f"interrupt: {what} stops at the next step boundary and writes a checkpoint (Ctrl-C again to stop at once)")

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def interrupts_left_to_child() -> Iterator[None]:
    """While a child process that handles Ctrl-C itself runs in the foreground: this process
    ignores SIGINT (the terminal sends it to both) and learns the outcome from the child's exit."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    # A Python handler, not SIG_IGN: an ignored SIGINT would be inherited by the child.
    previous = signal.signal(signal.SIGINT, lambda signum, frame: None)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def watch_interrupts(what: str = "apply") -> Iterator[StopRequest]:
    """Around stages that cannot stop at a boundary of their own (evals): the first Ctrl-C raises
    KeyboardInterrupt as usual and is also remembered, because a library on the way may swallow
    the exception (Keras does); the caller checks `requested` when the stage returns. A second
    Ctrl-C stops the process at once. Main thread only."""
    stop = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum, frame):
        if stop.requested:
            _say(f"interrupted again: {what} stopped at once; run the same `flanctl apply` to go on")
            os._exit(EXIT_INTERRUPTED)
        stop.requested = True
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)
