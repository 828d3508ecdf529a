"""Dependencies point inward (shared design: domain ← application service ← entrypoints):

- the domain (rules, money, terms, commands, events, aggregates, errors, access) imports no
  SQL, no Kafka, no web or CLI framework, and nothing of the ledger outside the domain;
- below the entrypoints, nothing imports an entrypoint (the CLI, the HTTP API) or a CLI or web
  framework;
- below the entrypoints, `ledger` never imports `consumers` or `replay`.

Read from the source (every import statement, also those inside functions), so a new arrow the
wrong way fails here. `KNOWN` lists the arrows that point the wrong way today, each to be
removed by the layering work of issue 8; an entry that is no longer true fails too, so that the
list only shrinks.
"""

from __future__ import annotations

import ast
from fnmatch import fnmatch
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

DOMAIN = ("ledger.rules", "ledger.money", "ledger.terms", "ledger.errors", "ledger.commands",
          "ledger.limits",
          "ledger.access", "ledger.config", "ledger.events", "ledger.events.*",
          "ledger.aggregates", "ledger.aggregates.*", "ledger.text", "ledger.membership")
ENTRYPOINTS = ("ledger.cli", "ledger.cli.*", "ledger.http", "ledger.http.*", "ledger.web",
               "ledger.web.*", "ledger.demo")
INFRASTRUCTURE = ("sqlalchemy", "kafka", "confluent_kafka", "psycopg", "eventsourcing_sqlalchemy",
                  "consumers", "replay")
FRAMEWORKS = ("typer", "fastapi", "starlette", "uvicorn")

#: (importer, imported) arrows that point the wrong way today (issue 8, point 1): none left.
KNOWN: set[tuple[str, str]] = set()


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for package in ("ledger", "consumers", "replay"):
        for path in sorted((ROOT / package).rglob("*.py")):
            names: set[str] = set()
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    names.update(alias.name for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names.add(node.module)
                    # `from ledger.cli import service` imports the module ledger.cli.service
                    names.update(f"{node.module}.{alias.name}" for alias in node.names)
            found[_module(path)] = names
    return found


def _is(name: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch(name, p) or name.startswith(p + ".") for p in patterns
               if "*" not in p) or any(fnmatch(name, p) for p in patterns if "*" in p)


def _wrong_arrows(graph: dict[str, set[str]] | None = None) -> set[tuple[str, str]]:
    graph = imports() if graph is None else graph
    modules = set(graph)
    wrong = set()
    for importer, names in graph.items():
        for name in names:
            if name.split(".")[0] in ("ledger", "consumers", "replay") and name not in modules:
                continue  # `from ledger.x import Name`: ledger.x itself is in `names` too
            if _is(importer, DOMAIN) and (
                    _is(name, INFRASTRUCTURE + FRAMEWORKS)
                    or (name.startswith("ledger.") and not _is(name, DOMAIN))):
                wrong.add((importer, name))
            if not _is(importer, ENTRYPOINTS):
                if _is(name, FRAMEWORKS) or (name.startswith("ledger") and _is(name, ENTRYPOINTS)):
                    wrong.add((importer, name))
                if importer.startswith("ledger") and _is(name, ("consumers", "replay")):
                    wrong.add((importer, name))
    return wrong


def test_arrows_point_inward() -> None:
    wrong = _wrong_arrows() - KNOWN
    assert not wrong, "imports that point outward:\n" + "\n".join(
        f"  {a} imports {b}" for a, b in sorted(wrong))


def test_the_known_wrong_arrows_are_still_there() -> None:
    gone = KNOWN - _wrong_arrows()
    assert not gone, f"fixed, so remove from KNOWN: {sorted(gone)}"


def test_the_check_sees_an_outward_arrow() -> None:
    graph = imports()
    assert "ledger.service" in graph["ledger.http.app"]  # inward: allowed
    planted = {
        "ledger.rules": {"sqlalchemy.orm"},  # domain → SQL
        "ledger.terms": {"ledger.core"},  # domain → application
        "ledger.service": {"ledger.http.app", "fastapi"},  # application → entrypoint
        "ledger.liability": {"consumers.relay"},  # ledger → consumers
        "ledger.http.app": {"ledger.service", "fastapi"},  # entrypoint → inward: fine
    }
    assert _wrong_arrows({**graph, **planted}) - _wrong_arrows() == {
        ("ledger.rules", "sqlalchemy.orm"), ("ledger.terms", "ledger.core"),
        ("ledger.service", "ledger.http.app"), ("ledger.service", "fastapi"),
        ("ledger.liability", "consumers.relay")}


def test_the_domain_loads_without_the_database_or_the_event_store() -> None:
    """Issue 8: `import ledger.rules` loaded SQLAlchemy and the whole application through
    `ledger/__init__.py` (half a second); `from ledger import Ledger` still works."""
    import subprocess
    import sys

    code = ("import sys\n"
            "import ledger.rules, ledger.money, ledger.terms, ledger.commands, ledger.events\n"
            "print(sorted(m for m in ('sqlalchemy', 'eventsourcing_sqlalchemy', 'ledger.core',"
            " 'typer', 'fastapi', 'confluent_kafka') if m in sys.modules))\n"
            "from ledger import Ledger, ApplyReport, LiabilityRow\n"
            "print(Ledger.__module__, ApplyReport.__module__, LiabilityRow.__module__)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    loaded, homes = done.stdout.splitlines()
    assert loaded == "[]"
    assert homes == "ledger.core ledger.core ledger.liability"


def test_each_entrypoint_lives_in_its_own_room() -> None:
    """The command line is `ledger/cli/`, the HTTP API `ledger/http/`, the web app `ledger/web/`:
    a module that uses typer lives under ledger.cli, one that uses FastAPI or Starlette under
    ledger.http or ledger.web, so an entrypoint cannot hide in the domain or audit packages."""
    rooms = {"typer": ("ledger.cli",), "fastapi": ("ledger.http", "ledger.web"),
             "starlette": ("ledger.http", "ledger.web")}
    misplaced = sorted(
        (importer, framework)
        for importer, names in imports().items() if importer.startswith("ledger")
        for framework, homes in rooms.items()
        if any(n == framework or n.startswith(framework + ".") for n in names)
        and not any(importer == h or importer.startswith(h + ".") for h in homes))
    assert misplaced == []


#: The CLI's composition root: the only functions of ledger/cli that open the store.
CLI_COMPOSITION_ROOT = {"open_ledger", "build_cli_service", "open_service"}
#: What reaches the store past the application service: a call of these names, or these
#: attributes (`ledger.engine`, `ledger.app.recorder`, `service.ledger`).
STORE_CALLS = {"open_ledger", "Ledger", "Session", "LedgerService"}
STORE_ATTRIBUTES = {"engine", "recorder", "ledger"}


def _store_doors(tree: ast.AST, where: str) -> list[str]:
    """Every place of `tree` outside the composition-root functions that opens the store or
    reaches into it."""
    found: list[str] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) \
                and node.name in CLI_COMPOSITION_ROOT:
            return
        if isinstance(node, ast.Call):
            called = node.func
            name = called.id if isinstance(called, ast.Name) else (
                called.attr if isinstance(called, ast.Attribute) else None)
            if name in STORE_CALLS:
                found.append(f"{where}:{node.lineno} calls {name}()")
        if isinstance(node, ast.Attribute) and node.attr in STORE_ATTRIBUTES:
            found.append(f"{where}:{node.lineno} uses .{node.attr}")
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def test_the_cli_goes_through_the_application_service() -> None:
    """Issue 8 point 1: every command of the command line (the reports, apply and import,
    and the Kafka worker commands relay, intake, project, replay, audit-view and the demo's
    pipeline) calls the application service that the CLI's composition root builds
    (`build_cli_service` / `open_service`), never the store: no `open_ledger`, no `Ledger`,
    no engine, no session, no recorder of its own, no `service.ledger` behind the service.
    The workers get the store from the service (ledger.workers)."""
    doors = [door for path in sorted((ROOT / "ledger" / "cli").glob("*.py"))
             for door in _store_doors(ast.parse(path.read_text()),
                                      str(path.relative_to(ROOT)))]
    assert doors == []


def test_the_store_check_sees_a_command_opening_the_store() -> None:
    planted = ast.parse(
        "def open_ledger(database):\n    return Ledger(database)\n"  # the root: allowed
        "def relay(database):\n"
        "    with open_ledger(database) as ledger:\n"
        "        main_relay(ledger.engine, ledger.app.recorder)\n"
        "def liability(database):\n    Session(x)\n"
        "def journal(service):\n    write(service.ledger.clock())\n")
    assert _store_doors(planted, "m") == [
        "m:4 calls open_ledger()", "m:5 uses .engine", "m:5 uses .recorder",
        "m:7 calls Session()", "m:9 uses .ledger"]
