"""Child processes die with their parent: conversion workers and the dcm2niix they start.

A killed run (``kill -9``, an out-of-memory kill, a SLURM job cancelled) must not leave workers
converting into a staging folder nobody will read. On Linux the kernel delivers ``SIGKILL`` to a child
when its parent dies (``prctl(PR_SET_PDEATHSIG)``); elsewhere this is a no-op.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys

_PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int | None = None) -> None:
    """Ask the kernel to kill this process when its parent dies (Linux; no-op elsewhere).

    Used as ``preexec_fn`` of subprocesses and as the initializer of worker processes. With
    ``parent_pid``, a process whose parent is already gone (it died before the request) stops at once.
    """
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if parent_pid is not None and os.getppid() != parent_pid:
        os._exit(1)
