"""`scripts/demo-web`: the address it prints is the one `serve` listens on (`--port N`), and the
demo users it adds sign in there."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import httpx

from ledger import Ledger
from tests.api.conftest import BOOK
from tests.api.test_server import free_port
from tests.contract import helpers as h
from tests.e2e.conftest import CLI, clean_env

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 60


def test_demo_web_prints_and_serves_the_port_it_is_given(tmp_path: Path) -> None:
    (tmp_path / ".rebate-ledger").mkdir()
    book = Ledger(f"sqlite:///{tmp_path / '.rebate-ledger' / 'demo.db'}")
    h.accepted_all(book, BOOK)
    book.close()
    port = free_port()
    assert port != 8000
    log = (tmp_path / "demo-web.log").open("w+")
    env = clean_env({"REBATE_LEDGER_VENV": str(CLI.parent.parent)})
    process = subprocess.Popen([str(REPO / "scripts" / "demo-web"), "--port", str(port)],
                               cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            text = (tmp_path / "demo-web.log").read_text()
            assert process.poll() is None, text
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, text
            time.sleep(0.2)
        text = (tmp_path / "demo-web.log").read_text()
        assert f"Open http://127.0.0.1:{port}/login" in text
        assert "127.0.0.1:8000" not in text
        assert "demo-customer" in text and "(customers C1)" in text
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            assert client.get("/login").status_code == 200
    finally:
        os.killpg(process.pid, 15)
        process.wait(timeout=20)
        log.close()
