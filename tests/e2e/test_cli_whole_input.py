"""Issue 14 point 5 (part): a store that cannot be opened, a CSV file or a JSON array given to
`apply`, and an empty input each give one line (exit 2 for the failures), not a traceback or
one rejection per physical line; nothing is stored."""

from __future__ import annotations

import socket

import pytest

from .conftest import Runner, agreement


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def one_error_line(done) -> str:  # noqa: ANN001 - a conftest Run
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, str(done)
    return lines[0]


def test_a_store_in_a_missing_folder_is_one_line(run: Runner) -> None:
    run.write("book.jsonl", [agreement("A1", "C1")])
    done = run("apply", "book.jsonl", "--database", "sqlite:///no/such/folder.db")
    assert done.code == 2, str(done)
    assert one_error_line(done) == (
        "error: cannot open the store no/such/folder.db: unable to open database file; check "
        "--database (or LEDGER_DATABASE_URL)")


def test_a_jsonl_file_given_as_the_database_is_one_line(run: Runner) -> None:
    run.write("book.jsonl", [agreement("A1", "C1")])
    done = run("liability", "--as-of", "2025-12-31", "--database", "sqlite:///book.jsonl")
    assert done.code == 2, str(done)
    assert one_error_line(done) == (
        "error: cannot open the store book.jsonl: file is not a database; check --database "
        "(or LEDGER_DATABASE_URL)")


def test_postgresql_refusing_the_connection_is_one_line(run: Runner) -> None:
    url = f"postgresql://nobody@127.0.0.1:{free_port()}/ledger"
    done = run("liability", "--as-of", "2025-12-31", "--database", url)
    assert done.code == 2, str(done)
    line = one_error_line(done)
    assert line.startswith(f"error: cannot open the store {url}: connection failed")
    assert line.endswith("Connection refused; check --database (or LEDGER_DATABASE_URL)")


@pytest.mark.parametrize(("content", "shape", "todo"), [
    (b"type,sale_id,customer_id,quantity\nrecord_sale,S1,C1,5\nrecord_sale,S2,C1,6\n",
     "a CSV file", 'write each row as one JSON object per line, e.g. {"type": "record_sale", ...}'),
    (b'[\n  {\n    "type": "create_group",\n    "group_id": "G1"\n  },\n  {\n    "type": '
     b'"create_group",\n    "group_id": "G2"\n  }\n]\n',
     "a JSON array", "write each element on a line of its own, e.g. jq -c '.[]' FILE"),
])
def test_a_csv_file_or_a_json_array_is_refused_as_a_whole(
        run: Runner, content: bytes, shape: str, todo: str) -> None:
    (run.cwd / "input").write_bytes(content)
    done = run("apply", "input")
    assert (done.code, done.stdout) == (2, ""), str(done)
    assert one_error_line(done) == (
        f"error: input: this is {shape}, not JSON Lines (one command object per line): {todo}; "
        "nothing was applied")
    assert not (run.cwd / ".rebate-ledger").exists()  # nothing stored, not even a store


def test_an_empty_input_says_so(run: Runner) -> None:
    (run.cwd / "empty.jsonl").write_bytes(b"")
    done = run("apply", "empty.jsonl")
    assert done.code == 0, str(done)
    assert done.stderr.splitlines()[0] == "empty.jsonl is empty: no commands, nothing applied"
