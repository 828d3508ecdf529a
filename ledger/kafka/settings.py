"""Kafka configuration in one place: pydantic settings read from `LEDGER_KAFKA_*` variables.

Variables (defaults in brackets):

- `LEDGER_KAFKA_BOOTSTRAP` [unset]: `host:port[,host:port…]` of a Kafka cluster; unset means
  the embedded broker (a running `rebate-ledger broker`, else one of the command's own).
- `LEDGER_KAFKA_CLIENT` [`confluent`]: `confluent` (librdkafka) or `kafka-python`.
- `LEDGER_KAFKA_TOPIC_PREFIX` [`rebate.`]: prefix of every topic the ledger names.
- `LEDGER_KAFKA_PARTITIONS` [`4`]: partitions of the topics the ledger creates.
- `LEDGER_KAFKA_SECURITY_PROTOCOL` [`PLAINTEXT`]: or `SSL`, `SASL_PLAINTEXT`, `SASL_SSL`.
- `LEDGER_KAFKA_SASL_MECHANISM` [unset]: `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512`.
- `LEDGER_KAFKA_SASL_USERNAME`, `LEDGER_KAFKA_SASL_PASSWORD` [unset]: SASL credentials.
- `LEDGER_KAFKA_SSL_CAFILE` [unset: the system's trust store]: CA bundle (PEM).
- `LEDGER_KAFKA_SSL_CERTFILE`, `LEDGER_KAFKA_SSL_KEYFILE` [unset]: client certificate and
  key (PEM) for mutual TLS.
- `LEDGER_KAFKA_CLIENT_ID` [`rebate-ledger`]: the client id brokers log.
- `LEDGER_KAFKA_REQUEST_TIMEOUT_MS` [`30000`]: bound on one request to a broker.
- `LEDGER_KAFKA_SESSION_TIMEOUT_MS` [`10000`]: a group member silent this long is evicted.
- `LEDGER_KAFKA_HEARTBEAT_INTERVAL_MS` [`1000`]: group heartbeat period (under a third of
  the session timeout).
- `LEDGER_KAFKA_MAX_POLL_INTERVAL_MS` [`300000`]: a member that does not poll this long
  leaves its group.
- `LEDGER_KAFKA_LINGER_MS` [`5`]: how long a producer waits to fill a batch.
- `LEDGER_KAFKA_INTAKE_POLL_RECORDS` [`50000`]: records intake takes per poll and applies in
  one database transaction (with its positions).
- `LEDGER_KAFKA_SEND_TIMEOUT_MS` [`30000`]: bound on a send blocked by a full buffer and on
  a record's delivery (at least one request plus one linger).

The default client is `confluent` because it measured 5-10 times faster than `kafka-python`
against the embedded broker (docs/kafka-notes.md); `kafka-python` stays fully supported.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ClientName = Literal["confluent", "kafka-python"]
SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


class KafkaSettings(BaseSettings):
    """Where the ledger's Kafka is and how to talk to it; every field has a documented default."""

    model_config = SettingsConfigDict(env_prefix="LEDGER_KAFKA_", extra="ignore")

    bootstrap: str | None = Field(
        default=None,
        description="Bootstrap servers `host:port[,host:port…]`. Default None: the ledger uses "
        "the embedded broker (a running `rebate-ledger broker`, else one of its own).",
    )
    client: ClientName = Field(
        default="confluent",
        description="Client library. Default `confluent` (librdkafka), the faster one as "
        "measured in docs/kafka-notes.md; `kafka-python` is the pure-Python alternative.",
    )
    topic_prefix: str = Field(
        default="rebate.",
        pattern=r"^[A-Za-z0-9._-]*$",
        max_length=100,
        description="Prefix of every topic name, so that several ledgers can share a cluster. "
        "Default `rebate.` (e.g. `rebate.events`).",
    )
    partitions: int = Field(
        default=4,
        ge=1,
        le=1024,
        description="Partition count of the topics the ledger creates. Default 4: one per "
        "worker of a small deployment; topics that already exist are left as they are.",
    )
    security_protocol: SecurityProtocol = Field(
        default="PLAINTEXT",
        description="Default PLAINTEXT (the embedded broker); SASL_SSL for a production cluster.",
    )
    sasl_mechanism: SaslMechanism | None = Field(
        default=None, description="SASL mechanism; default None (no SASL)."
    )
    sasl_username: str | None = Field(default=None, description="SASL user; default None.")
    sasl_password: SecretStr | None = Field(
        default=None, description="SASL password; default None. Never printed."
    )
    ssl_cafile: Path | None = Field(
        default=None, description="CA bundle (PEM); default None: the system's trust store."
    )
    ssl_certfile: Path | None = Field(
        default=None, description="Client certificate (PEM) for mutual TLS; default None."
    )
    ssl_keyfile: Path | None = Field(
        default=None, description="Private key (PEM) of the client certificate; default None."
    )
    client_id: str = Field(
        default="rebate-ledger", max_length=200, description="Client id; default rebate-ledger."
    )
    request_timeout_ms: int = Field(
        default=30_000, ge=1_000, le=300_000, description="Bound on one request; default 30 s."
    )
    session_timeout_ms: int = Field(
        default=10_000,
        ge=1_000,
        le=300_000,
        description="Group session timeout; default 10 s, so that a crashed worker's "
        "partitions move to a live one within seconds.",
    )
    heartbeat_interval_ms: int = Field(
        default=1_000, ge=100, le=100_000, description="Group heartbeat period; default 1 s."
    )
    max_poll_interval_ms: int = Field(
        default=300_000,
        ge=1_000,
        le=3_600_000,
        description="Longest pause between polls before a member leaves its group; default 5 min.",
    )
    intake_poll_records: int = Field(
        default=50_000,
        ge=1,
        le=100_000,
        description="Records intake takes per poll and applies in one database transaction, "
        "its positions stored in it; default 50,000 (against 5,000 a transaction, about a "
        "quarter less CPU for intake, relay and projection together: README, the Kafka "
        "benchmark).",
    )
    linger_ms: int = Field(
        default=5, ge=0, le=1_000, description="Producer batching delay; default 5 ms."
    )
    send_timeout_ms: int = Field(
        default=30_000,
        ge=1_000,
        le=600_000,
        description="Bound on a send blocked by a full buffer and on a record's delivery "
        "(raised to request_timeout_ms + linger_ms if below: both clients insist); "
        "default 30 s.",
    )

    @model_validator(mode="after")
    def _check_security(self) -> KafkaSettings:
        uses_sasl = self.security_protocol.startswith("SASL_")
        if uses_sasl and self.sasl_mechanism is None:
            raise ValueError(f"security_protocol {self.security_protocol} needs sasl_mechanism")
        if not uses_sasl and self.sasl_mechanism is not None:
            raise ValueError(
                f"sasl_mechanism {self.sasl_mechanism} needs a SASL_* security_protocol, "
                f"not {self.security_protocol}"
            )
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            raise ValueError("ssl_certfile and ssl_keyfile go together")
        if self.heartbeat_interval_ms * 3 > self.session_timeout_ms:
            raise ValueError("heartbeat_interval_ms must be under a third of session_timeout_ms")
        return self

    def topic(self, name: str) -> str:
        """The full name of one of the ledger's topics, e.g. `topic("events")`."""
        assert name and "/" not in name, name
        return f"{self.topic_prefix}{name}"
