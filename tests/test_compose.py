"""docker-compose.yml is the production-shaped stack. No container engine runs here, so these
tests check what can be checked without one: the services the issue names are there, every
ledger service runs a command the CLI really has, and every LEDGER_* variable it sets is one the
ledger reads (a typo there would be silently ignored in production)."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from ledger.config import Settings
from ledger.kafka.settings import KafkaSettings

ROOT = Path(__file__).resolve().parent.parent
CLI = Path(sys.executable).parent / "rebate-ledger"
LEDGER_SERVICES = ("relay", "intake", "projections", "api")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def test_the_stack_has_kafka_in_kraft_mode_postgres_and_the_three_workers(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert "controller" in services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"]
    assert services["postgres"]["image"].startswith("postgres:")
    for name in LEDGER_SERVICES:
        depends = services[name]["depends_on"]
        assert depends["kafka"]["condition"] == "service_healthy"
        assert depends["postgres"]["condition"] == "service_healthy"


@pytest.mark.parametrize("service", LEDGER_SERVICES)
def test_each_worker_runs_a_real_cli_command(compose: dict[str, Any], service: str) -> None:
    command = compose["services"][service]["command"]
    done = subprocess.run([str(CLI), *command, "--help"], capture_output=True, timeout=60,
                          check=False)
    assert done.returncode == 0, done.stderr.decode()


def test_every_ledger_variable_set_is_one_the_ledger_reads(compose: dict[str, Any]) -> None:
    known = {f"LEDGER_{name.upper()}" for name in Settings.model_fields} | {
        f"LEDGER_KAFKA_{name.upper()}" for name in KafkaSettings.model_fields
    }
    for name in LEDGER_SERVICES:
        environment = compose["services"][name]["environment"]
        unknown = sorted(k for k in environment if k.startswith("LEDGER_") and k not in known)
        assert not unknown, f"{name}: {unknown}"
        # and the values are valid settings
        kafka = {k.removeprefix("LEDGER_KAFKA_").lower(): v for k, v in environment.items()
                 if k.startswith("LEDGER_KAFKA_")}
        KafkaSettings.model_validate(kafka)


# The Compose Specification's JSON Schema, as docker-compose 1.29.2 (Debian bookworm's
# `docker-compose` package, Apache-2.0) validates files with: the check `docker compose config`
# makes first, run here without a container engine or a compose client.
COMPOSE_SCHEMA = Path(__file__).parent / "data" / "compose_spec.json"


def compose_errors(document: dict[str, Any]) -> list[str]:
    import jsonschema

    schema = orjson.loads(COMPOSE_SCHEMA.read_bytes())
    validator = jsonschema.Draft201909Validator(schema)
    return sorted(
        f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
        for error in validator.iter_errors(document)
    )


def test_the_file_is_valid_by_the_compose_specification(compose: dict[str, Any]) -> None:
    assert compose_errors(compose) == []


def test_the_compose_check_catches_a_misspelt_key(compose: dict[str, Any]) -> None:
    broken = copy.deepcopy(compose)
    broken["services"]["relay"]["enviroment"] = broken["services"]["relay"].pop("environment")
    errors = compose_errors(broken)
    assert errors and "enviroment" in errors[0], errors


def test_the_api_is_checked_healthy_by_its_readiness_route(compose: dict[str, Any]) -> None:
    api = compose["services"]["api"]
    assert api["command"][0] == "serve"
    assert any("/readyz" in part for part in api["healthcheck"]["test"])
    assert api["ports"] == ["127.0.0.1:8000:8000"]  # loopback only unless opened on purpose
