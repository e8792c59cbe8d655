"""Worker processes die with their parent: a pool worker under SIGKILL of its parent, and of `knucaptcha train`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from knucaptcha.workers import exit_with_parent

ORPHAN_GRACE = 10.0
"""Seconds the children of a killed process get to notice and exit (they take milliseconds)."""

POOL_PARENT = """
import sys, time
from concurrent.futures import ProcessPoolExecutor
import multiprocessing
from knucaptcha.workers import exit_with_parent

if __name__ == "__main__":
    pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"), initializer=exit_with_parent)
    pool.submit(time.sleep, 600)  # the worker is busy when its parent dies
    print("ready", flush=True)
    time.sleep(600)
"""


def _stat(pid: int) -> list[str] | None:
    """The fields of ``/proc/PID/stat`` after the command name; None once the process is gone or a zombie."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return None if fields[0] in ("Z", "X") else fields


def descendants(pid: int) -> dict[int, str]:
    """The live processes below ``pid``, each with its command line."""
    found: dict[int, str] = {}
    for child in (int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()):
        fields = _stat(child)
        if fields is None or int(fields[1]) != pid:
            continue
        try:
            found[child] = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        found.update(descendants(child))
    return found


def kill_and_count_survivors(process: subprocess.Popen, children: dict[int, str]) -> dict[int, str]:
    """SIGKILL ``process``, then wait (at most :data:`ORPHAN_GRACE` s) for ``children``; those still alive."""
    process.send_signal(signal.SIGKILL)
    process.wait()
    deadline = time.monotonic() + ORPHAN_GRACE
    alive = children
    while alive and time.monotonic() < deadline:
        time.sleep(0.1)
        alive = {pid: line for pid, line in alive.items() if _stat(pid) is not None}
    for pid in alive:  # clean up after a failing test
        os.kill(pid, signal.SIGKILL)
    return alive


def wait_for_children(process: subprocess.Popen, wanted: str, seconds: float) -> dict[int, str]:
    """The descendants of ``process`` once one of them has ``wanted`` in its command line."""
    deadline = time.monotonic() + seconds
    while True:
        children = descendants(process.pid)
        if any(wanted in line for line in children.values()):
            return children
        assert process.poll() is None, "the process ended before starting its worker"
        assert time.monotonic() < deadline, f"no child running {wanted!r} within {seconds:.0f} s"
        time.sleep(0.1)


def test_exit_with_parent_is_only_for_worker_processes() -> None:
    with pytest.raises(RuntimeError, match="started by multiprocessing"):
        exit_with_parent()


@pytest.mark.timeout(60)
def test_a_busy_pool_worker_exits_when_its_parent_is_killed(tmp_path: Path) -> None:
    script = tmp_path / "parent.py"
    script.write_text(POOL_PARENT)
    process = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "ready"
        children = wait_for_children(process, "spawn_main", 30)
    except BaseException:
        process.kill()
        raise
    assert kill_and_count_survivors(process, children) == {}


@pytest.mark.timeout(180)
def test_sigkill_of_train_leaves_no_data_worker_or_resource_tracker(tmp_path: Path) -> None:
    command = [
        sys.executable, "-m", "knucaptcha", "train", "--style", "knu", "--difficulty", "easy",
        "--epoch-size", "32", "--valid-size", "8", "--max-epochs", "1000", "--patience", "1000",
        "--threads", "1", "--out", str(tmp_path / "run"),
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        children = wait_for_children(process, "spawn_main", 150)  # the data worker (torch loads first)
    except BaseException:
        process.kill()
        raise
    assert kill_and_count_survivors(process, children) == {}
