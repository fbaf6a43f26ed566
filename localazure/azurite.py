"""Start and stop Azurite, the official storage emulator, on free loopback ports.

Azurite comes from npm (``package.json`` pins azurite@3.35.0, the last release for Node 20).
It is started with ``--skipApiVersionCheck`` because the pinned storage SDKs may send a newer
service version than this Azurite knows. Ports are chosen by Azurite itself (port 0) and read
back from its start-up lines, so parallel runs never collide.

Storage is in memory unless ``persistent``: Azurite saves its table database by rewriting it
whole, which under a load of audit records costs more than everything else together. A
persistent Azurite keeps a data folder, so a restart (same ports, same folder) resumes with the
same data: what an outage-and-recovery test and the demo's later review need.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

PROJECT_ROOT = Path(__file__).resolve().parents[1]

# The emulator's well-known development account (public, documented by Microsoft).
ACCOUNT_NAME = "devstoreaccount1"
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

_LISTENING = re.compile(r"Azurite (Blob|Queue|Table) service is successfully listening at http://[^:]+:(\d+)")


class AzuriteError(RuntimeError):
    """Azurite could not be found or did not start."""


@dataclass(frozen=True)
class AzuritePorts:
    blob: int
    queue: int
    table: int


def connection_string(ports: AzuritePorts) -> str:
    """The development account's connection string for these loopback ports."""
    host = "http://127.0.0.1"
    return (
        f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT_NAME};AccountKey={ACCOUNT_KEY};"
        f"BlobEndpoint={host}:{ports.blob}/{ACCOUNT_NAME};"
        f"QueueEndpoint={host}:{ports.queue}/{ACCOUNT_NAME};"
        f"TableEndpoint={host}:{ports.table}/{ACCOUNT_NAME};"
    )


def azurite_executable() -> Path:
    """The azurite launcher installed by ``npm ci`` in the project folder."""
    path = PROJECT_ROOT / "node_modules" / ".bin" / "azurite"
    if not path.exists():
        raise AzuriteError(
            f"Azurite is not installed at {path}: run `npm ci` in {PROJECT_ROOT} (make does this)"
        )
    return path


class Azurite:
    """One Azurite process serving blob, queue and table on 127.0.0.1."""

    def __init__(
        self, data_dir: Path | None = None, *, persistent: bool = False, start_timeout_s: float = 30.0
    ) -> None:
        self.persistent = persistent or data_dir is not None
        self._own_dir = data_dir is None
        self.data_dir = data_dir or Path(tempfile.mkdtemp(prefix="azurite-"))
        self.start_timeout_s = start_timeout_s
        self.ports: AzuritePorts | None = None
        self._process: subprocess.Popen[str] | None = None
        self._output: list[str] = []
        self._reader: threading.Thread | None = None

    def start(self) -> Azurite:
        if self._process is not None:
            return self
        wanted = self.ports or AzuritePorts(0, 0, 0)
        command = [
            str(azurite_executable()),
            "--skipApiVersionCheck",
            "--disableTelemetry",
            "--loose",
            *(["--location", str(self.data_dir)] if self.persistent else ["--inMemoryPersistence"]),
            "--blobHost", "127.0.0.1", "--blobPort", str(wanted.blob),
            "--queueHost", "127.0.0.1", "--queuePort", str(wanted.queue),
            "--tableHost", "127.0.0.1", "--tablePort", str(wanted.table),
        ]  # fmt: skip
        self._process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            cwd=self.data_dir,
        )
        self.ports = self._wait_for_ports(self._process)
        return self

    def _wait_for_ports(self, process: subprocess.Popen[str]) -> AzuritePorts:
        found: dict[str, int] = {}
        ready = threading.Event()

        def read_output() -> None:
            assert process.stdout is not None
            for line in process.stdout:
                self._output.append(line.rstrip())
                match = _LISTENING.search(line)
                if match:
                    found[match.group(1)] = int(match.group(2))
                    if len(found) == 3:
                        ready.set()
            ready.set()  # the process ended

        # The reader keeps draining stdout after start-up so Azurite never blocks on a full pipe.
        self._reader = threading.Thread(target=read_output, name="azurite-output", daemon=True)
        self._reader.start()
        if not ready.wait(self.start_timeout_s) or len(found) < 3:
            self.stop()
            tail = "\n".join(self._output[-20:])
            raise AzuriteError(f"Azurite did not start within {self.start_timeout_s:.0f} s:\n{tail}")
        return AzuritePorts(blob=found["Blob"], queue=found["Queue"], table=found["Table"])

    def stop(self) -> None:
        """Stop the process; the data folder stays, so ``start()`` again resumes with the same data."""
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        if self._reader is not None:
            self._reader.join(timeout=10)  # it ends at the pipe's end of file, now the process is gone
            self._reader = None
        if process.stdout is not None:
            process.stdout.close()

    def restart(self) -> None:
        """Stop and start again on the same ports; the data survives only if ``persistent``."""
        self.stop()
        deadline = time.monotonic() + 10
        while True:  # the old process may hold the ports for a moment after exit
            try:
                self.start()
                return
            except AzuriteError:
                if time.monotonic() > deadline:
                    raise

    def close(self) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def connection_string(self) -> str:
        if self.ports is None:
            raise AzuriteError("Azurite has not been started")
        return connection_string(self.ports)

    def __enter__(self) -> Azurite:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
