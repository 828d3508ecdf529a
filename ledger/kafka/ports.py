"""The ledger's view of Kafka (ports): record and partition types, the producer, consumer,
admin and transport interfaces, and the topic names. The adapters over the client libraries
live in `consumers.transport`; the ledger's own Kafka readers (the projection runner, the
projection reader) need only this, so `ledger` never imports `consumers` (issue 8).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple, Protocol

from ledger.kafka.settings import KafkaSettings

EVENTS = "events"
SALES = "sales"
COMMANDS = "commands"
REJECTED = "rejected"
ALL = (EVENTS, SALES, COMMANDS, REJECTED)

Headers = Sequence[tuple[str, bytes]]
# A rebalance callback gets the partitions newly assigned to this member and may return
# where to start reading each (e.g. the positions a projection stored with its rows).
OnAssign = Callable[[list["TopicPartition"]], Mapping["TopicPartition", int] | None]
OnRevoke = Callable[[list["TopicPartition"]], None]


class TransportError(RuntimeError):
    """Kafka said no, or did not answer in time."""


class TopicPartition(NamedTuple):
    topic: str
    partition: int


class Record(NamedTuple):
    """One consumed record; `headers` is a tuple of (name, value) pairs, in order.
    (A named tuple: it is built once per record, and a frozen dataclass costs 3 times more.)"""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()

    @property
    def topic_partition(self) -> TopicPartition:
        return TopicPartition(self.topic, self.partition)


class Producer(Protocol):
    def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes,
        headers: Headers | None = None,
        partition: int | None = None,
    ) -> None:
        """Queue one record; blocks at most `send_timeout_ms` while the buffer is full.
        `partition` None: the key's partition (murmur2); else exactly that partition."""

    def flush(self, timeout_s: float) -> None:
        """Wait until every queued record is acknowledged; raise TransportError if one failed
        (since the previous flush) or some are still pending after `timeout_s`."""

    def close(self) -> None: ...


class Consumer(Protocol):
    def assign(self, partitions: Sequence[TopicPartition]) -> None:
        """Read exactly these partitions (no group rebalancing); each starts at its committed
        offset in the group if there is one, else at the earliest offset."""

    def subscribe(
        self,
        topics: Sequence[str],
        on_assign: OnAssign | None = None,
        on_revoke: OnRevoke | None = None,
    ) -> None:
        """Share the topics' partitions with the group's other members (needs a group id)."""

    def assignment(self) -> set[TopicPartition]: ...

    def poll(self, max_records: int, timeout_s: float) -> list[Record]:
        """Up to `max_records` records, waiting at most `timeout_s` for the first."""

    def seek(self, partition: TopicPartition, offset: int) -> None:
        """Read `partition` from `offset` next (the partition must be assigned)."""

    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Synchronously store, for the group, the next offset to read of each partition."""

    def committed(self, partitions: Sequence[TopicPartition]) -> dict[TopicPartition, int | None]:
        """The group's committed offsets (None where nothing is committed)."""

    def end_offsets(self, partitions: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
        """Each partition's high-water mark, asked of the broker one partition at a time.
        On the embedded broker it can be too SMALL (docs/kafka-notes.md, quirk 4), never too
        large: a mark above a position proves records wait there, the converse proves
        nothing."""

    def close(self) -> None: ...


class Admin(Protocol):
    def create_topics(self, names: Sequence[str], partitions: int) -> list[str]:
        """Create the topics that do not exist yet, with `partitions` partitions each; return
        the names created. Existing topics are left as they are (whatever their partitions)."""

    def delete_topics(self, names: Sequence[str]) -> None:
        """Delete the topics (missing ones are no error)."""

    def list_topics(self) -> dict[str, int]:
        """Every topic of the cluster with its partition count, internal ones (`__…`) left
        out."""

    def cluster_id(self) -> str | None:
        """The id the cluster reports. Stable for a Kafka cluster; new at every start of the
        embedded broker, so a change of it means the log was lost."""

    def close(self) -> None: ...


class Transport(Protocol):
    """Makes producers, consumers and admins of one client library for one cluster."""

    name: str

    def producer(self) -> Producer: ...

    def consumer(self, group_id: str | None = None) -> Consumer: ...

    def admin(self) -> Admin: ...


def ensure_topics(admin: Admin, settings: KafkaSettings) -> dict[str, int]:
    """Create the ledger's topics that do not exist (with `settings.partitions` partitions);
    return every ledger topic with its partition count."""
    names = [settings.topic(name) for name in ALL]
    admin.create_topics(names, settings.partitions)
    existing = admin.list_topics()
    return {name: existing[name] for name in names if name in existing}


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 hash of a key (the Java client's `Utils.murmur2`, signed 32 bits)."""
    length = len(data)
    seed, m, r = 0x9747B28C, 0x5BD1E995, 24
    h = (seed ^ length) & 0xFFFFFFFF
    whole = length - length % 4
    for i in range(0, whole, 4):
        k = int.from_bytes(data[i:i + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> r
        k = (k * m) & 0xFFFFFFFF
        h = ((h * m) & 0xFFFFFFFF) ^ k
    extra = length % 4
    if extra >= 3:
        h ^= data[whole + 2] << 16
    if extra >= 2:
        h ^= data[whole + 1] << 8
    if extra >= 1:
        h ^= data[whole]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def partition_of(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner (murmur2, both client libraries here) gives
    a keyed record: `toPositive(murmur2(key)) % partitions`. The relay sends each event to
    this partition explicitly, so that it knows which partition's chain the record extends."""
    assert partitions >= 1, partitions
    return (murmur2(key) & 0x7FFFFFFF) % partitions
