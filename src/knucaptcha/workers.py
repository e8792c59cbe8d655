"""Worker processes that do not outlive the process that started them.

A pool worker waits on its task queue for as long as it lives. When its parent
is killed (SIGKILL, the OOM killer) nothing tells it to stop: it lingers,
holding its memory, and the pipe it inherited keeps multiprocessing's resource
tracker alive too. :func:`exit_with_parent`, given to a pool as its
``initializer``, ends the worker the moment the parent is gone. Standard
library only: a spawned worker imports this module, and must not pull in torch.
"""

from __future__ import annotations

import multiprocessing
import os
import threading

ORPHAN_EXIT_STATUS = 70
"""The status a worker exits with when its parent died (``EX_SOFTWARE``: nobody is left to read it anyway)."""


def exit_with_parent() -> None:
    """Make this process exit as soon as its parent dies, however it dies.

    Call it in a process started by :mod:`multiprocessing` (a pool's
    ``initializer``). A daemon thread waits on the parent's sentinel, a pipe
    whose other end only the parent holds, so it reads as closed the instant
    the parent exits: no polling, no delay, no cost while the parent lives.

    Raises:
        RuntimeError: this process was not started by multiprocessing.
    """
    parent = multiprocessing.parent_process()
    if parent is None:
        raise RuntimeError("exit_with_parent() is for processes started by multiprocessing")
    threading.Thread(target=_exit_when_gone, args=(parent,), name="exit-with-parent", daemon=True).start()


def _exit_when_gone(parent: multiprocessing.process.BaseProcess) -> None:
    parent.join()  # returns once the sentinel closes: the parent is gone
    os._exit(ORPHAN_EXIT_STATUS)  # at once: a normal exit would wait for the task in hand to finish
