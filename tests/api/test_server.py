"""The server started for real (`rebate-ledger serve`) on a free loopback port, on SQLite and
on PostgreSQL, driven with an HTTP client: users added with the CLI, the book sent as the ERP
and as commercial, finance approving, the same liability as the CLI; idempotency across a
restart; two worker processes writing at once with nothing lost or doubled."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import orjson

from tests.contract import helpers as h
from tests.e2e.conftest import CLI, clean_env

START_TIMEOUT_S = 60


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def server(database_url: str, cwd: Path, workers: int = 1) -> Iterator[str]:
    port = free_port()
    log = (cwd / f"server-{port}.log").open("wb")
    process = subprocess.Popen(
        [str(CLI), "serve", "--port", str(port), "--database", database_url,
         "--workers", str(workers)],
        cwd=cwd, env=clean_env(), stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            assert process.poll() is None, (cwd / f"server-{port}.log").read_text()
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server did not become ready"
            time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def cli(cwd: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(CLI), *args], cwd=cwd, env=clean_env(), input=stdin,
                          capture_output=True, text=True, timeout=120)


def add_user(cwd: Path, database_url: str, *args: str,
             stdin: str | None = None) -> dict[str, str]:
    done = cli(cwd, "users", "add", *args, "--database", database_url, stdin=stdin)
    assert done.returncode == 0, done.stderr
    return {"Authorization": f"Bearer {done.stdout.strip().splitlines()[-1]}"}


def ndjson(commands: list[dict[str, object]]) -> bytes:
    return b"\n".join(orjson.dumps(c) for c in commands)


def test_the_small_book_through_the_api_reads_as_the_cli(database_url: str,
                                                         tmp_path: Path) -> None:
    erp = add_user(tmp_path, database_url, "erp", "--role", "ingest")
    deals = add_user(tmp_path, database_url, "carla", "--role", "commercial")
    money = add_user(tmp_path, database_url, "fred", "--role", "finance",
                     "--password-stdin", stdin="correct horse\n")
    shop = add_user(tmp_path, database_url, "shop1", "--role", "customer", "--customer", "C1")
    listed = orjson.loads(cli(tmp_path, "users", "list", "--database", database_url).stdout)
    assert [(u["name"], u["password"]) for u in listed["users"]] == [
        ("carla", False), ("erp", False), ("fred", True), ("shop1", False)]
    with server(database_url, tmp_path) as base:
        ndjson_type = {"content-type": "application/x-ndjson"}
        proposals = httpx.post(f"{base}/v1/commands", headers={**deals, **ndjson_type},
                               content=ndjson([h.agreement("A1"),
                                               h.agreement("A2", customer_id="C2")]))
        assert proposals.status_code == 202
        for item in proposals.json()["proposals"]:
            approved = httpx.post(f"{base}/v1/proposals/{item['proposal_id']}/approve",
                                  headers=money)
            assert approved.status_code == 200, approved.text
        sales = httpx.post(f"{base}/v1/commands", headers={**erp, **ndjson_type},
                           content=ndjson([h.sale("S1", "120", "1200.00", "2025-02-01"),
                                           h.sale("S2", "7", "70.00", "2025-02-02",
                                                  customer_id="C2")]))
        assert sales.status_code == 200 and sales.json()["accepted"] == 2
        known = "2030-01-01T00:00:00Z"
        api = httpx.get(f"{base}/v1/liability", headers=money,
                        params={"as_of": "2025-12-31", "known_at": known}).json()
        mine = httpx.get(f"{base}/v1/liability", headers=shop,
                         params={"as_of": "2025-12-31", "known_at": known}).json()
    printed = cli(tmp_path, "liability", "--as-of", "2025-12-31", "--known-at", known,
                  "--format", "json", "--database", database_url)
    assert api == orjson.loads(printed.stdout)
    assert [r["liability"] for r in api["rows"]] == ["120.00", "7.00"]
    assert mine["rows"] == api["rows"][:1]


def test_an_idempotency_key_holds_across_a_server_restart(database_url: str,
                                                          tmp_path: Path) -> None:
    erp = add_user(tmp_path, database_url, "erp", "--role", "ingest")
    headers = {**erp, "Idempotency-Key": "feed-2025-02-01"}
    body = orjson.dumps(h.sale("S1", "3", "30.00"))
    with server(database_url, tmp_path) as base:
        first = httpx.post(f"{base}/v1/commands", headers=headers, content=body)
    with server(database_url, tmp_path) as base:
        again = httpx.post(f"{base}/v1/commands", headers=headers, content=body)
        events = httpx.get(f"{base}/v1/events", headers=add_user(
            tmp_path, database_url, "audrey", "--role", "auditor")).json()["events"]
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    assert [(e["type"], e["actor"]) for e in events] == [("SalesRecorded", "erp")]


def test_two_workers_writing_at_once_lose_and_double_nothing(database_url: str,
                                                             tmp_path: Path) -> None:
    erp = add_user(tmp_path, database_url, "erp", "--role", "ingest")
    batches = [[h.sale(f"S{b}-{n}", "1", "1.00") for n in range(50)] for b in range(16)]
    with server(database_url, tmp_path, workers=2) as base:
        def send(batch: list[dict[str, object]]) -> int:
            headers = {**erp, "content-type": "application/x-ndjson"}
            with httpx.Client(timeout=120) as client:
                first = client.post(f"{base}/v1/commands", headers=headers,
                                    content=ndjson(batch)).json()["accepted"]
                # the same batch again: every line a duplicate
                again = client.post(f"{base}/v1/commands", headers=headers,
                                    content=ndjson(batch)).json()
                assert again["accepted"] == 0 and again["duplicates"] == len(batch)
                return int(first)

        with ThreadPoolExecutor(8) as pool:
            accepted = sum(pool.map(send, batches))
    assert accepted == 16 * 50
    state = cli(tmp_path, "liability", "--as-of", "2025-12-31", "--format", "json",
                "--database", database_url)
    assert state.returncode == 0
    from ledger import Ledger

    with Ledger(database_url) as ledger:
        assert ledger.state()["accepted"] == 2 * 16 * 50  # duplicates count as accepted
        assert len(ledger.rejections()) == 0
