"""CPU priority for background work that shares cores with the federation it watches."""

from __future__ import annotations

import contextlib
import os
import sys
import threading

# Bookkeeping (evaluating models, drawing rows) yields to trainers and aggregators.
BACKGROUND_NICE = 10


def lower_thread_priority(nice: int = BACKGROUND_NICE) -> None:
    """Nice `nice` for the calling thread only (Linux has per-thread nice values; elsewhere the
    call would renice the whole process, so it is skipped)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
