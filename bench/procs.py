"""Server processes the benchmark starts: launch, wait until ready, measure memory, stop by PID.

Every process is started by this module on loopback and stopped by its own PID
(SIGTERM, then SIGKILL after a grace period), together with the children it forked,
found through ``/proc/<pid>/task/*/children``. Peak memory comes from ``VmHWM`` in
``/proc/<pid>/status`` and is reset between scenarios by writing ``5`` to
``/proc/<pid>/clear_refs`` (Linux >= 4.0), so each scenario sees its own peak.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

READY_TIMEOUT_S = 30.0
STOP_GRACE_S = 5.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants that are still alive."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as fh:
                    todo.extend(int(c) for c in fh.read().split())
        except OSError:
            continue
    return out


def _status_kib(pid: int, field: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


@dataclass(frozen=True, slots=True)
class Memory:
    """Resident memory of a process tree in bytes: now, and peak since the last reset."""

    rss_bytes: int
    peak_rss_bytes: int
    max_process_peak_bytes: int


class ServerProcess:
    """A started server: its PID, base URL and memory; stopped by PID."""

    def __init__(
        self,
        argv: Sequence[str],
        port: int,
        env: Mapping[str, str] | None = None,
        host: str = "127.0.0.1",
        log_path: str | None = None,
        cwd: str | None = None,
    ) -> None:
        self.argv = list(argv)
        self.host = host
        self.port = port
        self._log = open(log_path or os.devnull, "ab")
        self.proc = subprocess.Popen(
            self.argv,
            env=dict(env) if env is not None else None,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S, port: int | None = None) -> None:
        """Wait until the port (``port``, else the server's own) accepts connections; raise if
        the process exits first."""
        port = self.port if port is None else port
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.argv[0]} exited with {self.proc.returncode} before listening")
            if port_open(self.host, port):
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.argv[0]} did not listen on {port} within {timeout_s:.0f}s")

    def reset_peak(self) -> None:
        for pid in process_tree(self.pid):
            try:
                with open(f"/proc/{pid}/clear_refs", "w") as fh:
                    fh.write("5")
            except OSError:
                pass

    def memory(self) -> Memory:
        pids = process_tree(self.pid)
        peaks = [_status_kib(p, "VmHWM") * 1024 for p in pids]
        return Memory(
            rss_bytes=sum(_status_kib(p, "VmRSS") * 1024 for p in pids),
            peak_rss_bytes=sum(peaks),
            max_process_peak_bytes=max(peaks, default=0),
        )

    def stop(self) -> None:
        """SIGTERM the process and its descendants by PID; SIGKILL what remains after a grace period."""
        if self.proc.poll() is None:
            pids = process_tree(self.pid)
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
            try:
                self.proc.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                pass
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            if self.proc.poll() is None:
                self.proc.wait()
        self._log.close()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
