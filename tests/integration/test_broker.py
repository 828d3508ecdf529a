"""The embedded broker: it starts and answers Kafka requests, it stops however its owner ends,
and `rebate-ledger broker` is found by other commands through `<home>/broker.json`."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from ledger.kafka.broker import (
    REGISTRY_FILE,
    BrokerAlreadyRunning,
    EmbeddedBroker,
    answers,
    broker_bootstrap,
    find_running_broker,
    free_port,
    probe_metadata,
    registered_broker,
)

pytestmark = pytest.mark.kafka

WAIT_S = 15.0


def pid_alive(pid: int) -> bool:
    """Alive and not a zombie (a zombie's port is closed and it runs nothing)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        status = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0]
    except OSError:
        return True
    return status != "Z"


def port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def wait_until(condition, timeout_s: float = WAIT_S) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return bool(condition())


def run_owner(script: str, *args: str) -> subprocess.Popen[str]:
    """A separate Python process (the broker's owner) running `script`."""
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


OWNER_PRINTS_BROKER = """
    import sys, threading, time
    from pathlib import Path
    from ledger.kafka.broker import EmbeddedBroker
    broker = EmbeddedBroker(Path(sys.argv[1]))
    if sys.argv[2] == "exit":
        # started from a worker thread, which gets no parent-death signal: only atexit stops it
        starter = threading.Thread(target=broker.start)
        starter.start()
        starter.join()
    else:
        broker.start()
    print(broker.pid, broker.port, flush=True)
    if sys.argv[2] == "wait":
        time.sleep(60)
    else:  # exits once told to: the test has seen its broker running by then
        sys.stdin.readline()
"""


def test_broker_answers_a_metadata_request_advertising_its_own_address(tmp_path: Path) -> None:
    with EmbeddedBroker(tmp_path) as broker:
        assert broker.bootstrap == f"127.0.0.1:{broker.port}"
        metadata = probe_metadata("127.0.0.1", broker.port)
        assert metadata.brokers == [broker.bootstrap]
        assert metadata.cluster_id == broker.cluster_id
        assert pid_alive(broker.pid)


def test_stop_ends_the_process_and_closes_the_port(tmp_path: Path) -> None:
    broker = EmbeddedBroker(tmp_path)
    bootstrap = broker.start()
    pid, port = broker.pid, broker.port
    assert answers(bootstrap)
    broker.stop()
    assert not pid_alive(pid)
    assert not port_open(port)
    assert not answers(bootstrap)
    assert not broker.running


def test_context_exit_stops_the_broker_even_when_the_block_raises(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="boom"), EmbeddedBroker(tmp_path) as broker:
        pid, port = broker.pid, broker.port
        raise RuntimeError("boom")
    assert not pid_alive(pid)
    assert not port_open(port)


def test_broker_output_goes_to_a_log_file_in_the_given_directory(tmp_path: Path) -> None:
    log_dir = tmp_path / "logs"
    with EmbeddedBroker(log_dir) as broker:
        port = broker.port
    log = (log_dir / "broker.log").read_text()
    assert f"tcp://127.0.0.1:{port}" in log
    assert "memory://tansu/" in log


def test_a_port_that_nobody_serves_does_not_answer() -> None:
    assert not answers(f"127.0.0.1:{free_port()}")


def test_a_tcp_server_that_is_not_kafka_does_not_answer() -> None:
    # the probe must not take a TCP accept for a broker: this server answers like HTTP
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]

        def serve() -> None:
            connection, _ = server.accept()
            with connection:
                connection.recv(1024)
                connection.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        assert not answers(f"127.0.0.1:{port}", timeout_s=2.0)
        thread.join(timeout=WAIT_S)


def test_a_taken_port_is_refused_rather_than_shared(tmp_path: Path) -> None:
    with EmbeddedBroker(tmp_path / "a") as first:
        second = EmbeddedBroker(tmp_path / "b", port=first.port, start_timeout_s=5)
        with pytest.raises(Exception, match="did not start"):
            second.start()
        assert not second.running
        assert answers(first.bootstrap)


@pytest.mark.parametrize("ending", ["sigterm", "sigkill", "normal exit"])
def test_broker_stops_when_its_owner_process_ends(tmp_path: Path, ending: str) -> None:
    # SIGTERM: our handler (exit status 143, not -15, shows it ran); SIGKILL: the Linux
    # parent-death signal; normal exit: atexit
    owner = run_owner(
        OWNER_PRINTS_BROKER, str(tmp_path), "exit" if ending == "normal exit" else "wait"
    )
    assert owner.stdout is not None
    broker_pid, port = (int(field) for field in owner.stdout.readline().split())
    assert pid_alive(broker_pid)
    if ending == "sigterm":
        owner.send_signal(signal.SIGTERM)
    elif ending == "sigkill":
        owner.kill()
    else:  # the owner exited at once after printing, and could stop its broker before the
        # check above (CI failed so under load): now it exits only when told
        assert owner.stdin is not None
        owner.stdin.write("exit\n")
        owner.stdin.close()
    status = owner.wait(timeout=WAIT_S)
    expected = {"sigterm": 128 + signal.SIGTERM, "sigkill": -signal.SIGKILL, "normal exit": 0}
    assert status == expected[ending], owner.stderr.read() if owner.stderr else ""
    assert wait_until(lambda: not pid_alive(broker_pid))
    assert wait_until(lambda: not port_open(port))


def test_registered_broker_is_found_by_others_and_unregistered_on_exit(tmp_path: Path) -> None:
    with registered_broker(tmp_path) as broker:
        entry = json.loads((tmp_path / REGISTRY_FILE).read_text())
        assert entry["pid"] == broker.pid
        assert entry["bootstrap"] == broker.bootstrap
        assert find_running_broker(tmp_path) == broker.bootstrap
    assert not (tmp_path / REGISTRY_FILE).exists()
    assert find_running_broker(tmp_path) is None


def test_a_second_registered_broker_for_the_same_home_is_refused(tmp_path: Path) -> None:
    with registered_broker(tmp_path) as broker:
        with (
            pytest.raises(BrokerAlreadyRunning, match=broker.bootstrap),
            registered_broker(tmp_path),
        ):
            pass
        assert find_running_broker(tmp_path) == broker.bootstrap


def test_registry_of_a_dead_process_is_stale_and_removed(tmp_path: Path) -> None:
    dead_pid = subprocess.Popen([sys.executable, "-c", "pass"])
    dead_pid.wait()
    registry = tmp_path / REGISTRY_FILE
    registry.write_text(json.dumps({"pid": dead_pid.pid, "bootstrap": "127.0.0.1:9"}))
    assert find_running_broker(tmp_path) is None
    assert not registry.exists()


def test_registry_of_a_live_process_that_does_not_answer_kafka_is_stale(tmp_path: Path) -> None:
    # a reused pid: alive, but nothing Kafka on the registered port
    registry = tmp_path / REGISTRY_FILE
    bootstrap = f"127.0.0.1:{free_port()}"
    registry.write_text(json.dumps({"pid": os.getpid(), "bootstrap": bootstrap}))
    assert find_running_broker(tmp_path) is None
    assert not registry.exists()


def test_an_unreadable_registry_is_removed(tmp_path: Path) -> None:
    registry = tmp_path / REGISTRY_FILE
    registry.write_text("{not json")
    assert find_running_broker(tmp_path) is None
    assert not registry.exists()


def test_main_broker_serves_in_the_foreground_until_ctrl_c(tmp_path: Path) -> None:
    owner = run_owner(
        """
        import sys
        from ledger.kafka.broker import main_broker
        raise SystemExit(main_broker(sys.argv[1]))
        """,
        str(tmp_path),
    )
    try:
        assert wait_until(lambda: find_running_broker(tmp_path) is not None)
        entry = json.loads((tmp_path / REGISTRY_FILE).read_text())
        assert entry["owner_pid"] == owner.pid
        assert answers(entry["bootstrap"])
        owner.send_signal(signal.SIGINT)  # what Ctrl-C delivers
        stdout, stderr = owner.communicate(timeout=WAIT_S)
    finally:
        if owner.poll() is None:
            owner.kill()
    assert owner.returncode == 0, stderr
    assert f"broker ready at {entry['bootstrap']}" in stdout
    assert not (tmp_path / REGISTRY_FILE).exists()
    assert wait_until(lambda: not pid_alive(entry["pid"]))


def test_commands_use_the_configured_cluster_first(tmp_path: Path) -> None:
    with broker_bootstrap("kafka-1:9092,kafka-2:9092", tmp_path) as bootstrap:
        assert bootstrap == "kafka-1:9092,kafka-2:9092"
    assert not (tmp_path / "broker.log").exists()  # no embedded broker was started


def test_commands_use_the_running_broker_else_one_of_their_own(tmp_path: Path) -> None:
    with registered_broker(tmp_path) as shared, broker_bootstrap(None, tmp_path) as bootstrap:
        assert bootstrap == shared.bootstrap
    assert find_running_broker(tmp_path) is None
    with broker_bootstrap(None, tmp_path) as own:
        assert answers(own)
        assert find_running_broker(tmp_path) is None  # a private broker is not registered
    assert not answers(own)  # stopped with the block
