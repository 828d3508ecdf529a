"""Kafka at the edge of the ledger: its settings and the embedded broker.

The transport (producers, consumers, admin over confluent-kafka or kafka-python) lives in
`consumers.transport`; nothing in the ledger core imports this package.
"""

from ledger.kafka.broker import (
    BrokerAlreadyRunning,
    BrokerError,
    EmbeddedBroker,
    broker_bootstrap,
    find_running_broker,
    main_broker,
)
from ledger.kafka.settings import KafkaSettings

__all__ = [
    "BrokerAlreadyRunning",
    "BrokerError",
    "EmbeddedBroker",
    "KafkaSettings",
    "broker_bootstrap",
    "find_running_broker",
    "main_broker",
]
