"""`--workers N`: N gateway processes on one port (SO_REUSEPORT), so sqlgate uses every core.

The supervisor forks the workers, forwards SIGTERM/SIGINT/SIGHUP to them, restarts a worker
that dies unexpectedly, and exits when all have drained.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


def supervise(count: int, run_worker: Callable[[int, int, int], None]) -> int:
    """Fork `count` workers running `run_worker(index, count, supervisor_pid)`; wait for them."""
    supervisor_pid = os.getpid()
    children: dict[int, int] = {}  # pid -> worker index
    started: dict[int, float] = {}  # pid -> start time
    stopping = False

    def spawn(index: int) -> None:
        pid = os.fork()
        if pid == 0:  # the worker
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                signal.signal(sig, signal.SIG_DFL)
            code = 0
            try:
                run_worker(index, count, supervisor_pid)
            except BaseException:
                log.exception("worker %d failed", index)
                code = 1
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        children[pid] = index
        started[pid] = time.monotonic()

    def forward(signum: int, _frame: object) -> None:
        nonlocal stopping
        if signum in (signal.SIGTERM, signal.SIGINT):
            stopping = True
        for pid in list(children):
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, forward)
    for index in range(count):
        spawn(index)
    log.info("supervisor %d started %d workers", supervisor_pid, count)
    status = 0
    while children:
        try:
            pid, code = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        index = children.pop(pid, -1)
        exit_code = os.waitstatus_to_exitcode(code)
        lived = time.monotonic() - started.pop(pid, 0.0)
        if not stopping and index >= 0 and exit_code != 0 and lived < 5:
            # Failing right at start (bad secret, port taken): restarting cannot help.
            log.error("worker %d failed at start (exit %d); stopping", index, exit_code)
            stopping = True
            status = 1
            forward(signal.SIGTERM, None)
            continue
        if not stopping and index >= 0:
            log.error("worker %d (pid %d) exited with %d; restarting it", index, pid, exit_code)
            time.sleep(0.5)
            spawn(index)
        elif exit_code != 0:
            status = 1
    return status
