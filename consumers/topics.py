"""The ledger's topics, all named `<LEDGER_KAFKA_TOPIC_PREFIX><name>`:

- `events`: every stored event in an envelope, and the relay's watermarks
  (`ledger.events.envelope`); keyed by customer id.
- `sales`: sales from an ERP, one contract `record_sale` or `reverse_sale` per record.
- `commands`: any contract command, one per record.
- `rejected`: records intake could not apply: the original bytes as the value, the reason and
  the source topic, partition and offset in headers.
"""

from __future__ import annotations

from consumers.transport import Admin
from ledger.kafka.settings import KafkaSettings

EVENTS = "events"
SALES = "sales"
COMMANDS = "commands"
REJECTED = "rejected"
ALL = (EVENTS, SALES, COMMANDS, REJECTED)


def ensure_topics(admin: Admin, settings: KafkaSettings) -> dict[str, int]:
    """Create the ledger's topics that do not exist (with `settings.partitions` partitions);
    return every ledger topic with its partition count."""
    names = [settings.topic(name) for name in ALL]
    admin.create_topics(names, settings.partitions)
    existing = admin.list_topics()
    return {name: existing[name] for name in names if name in existing}
