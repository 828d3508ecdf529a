"""One small Kafka transport for the relay, intake and projections, over two client libraries:
`confluent-kafka` (librdkafka, the default: measured faster) and `kafka-python` (pure Python).

The rest of the ledger sees only `Producer`, `Consumer`, `Admin` and `Record`; which library
sits behind them is `KafkaSettings.client`. Both are run through the same integration tests.

Conventions, the same for both libraries:
- a committed offset is the offset of the NEXT record to read (Kafka's convention), so after
  handling record `r` one commits `r.offset + 1`;
- consumers never auto-commit; a partition with no committed offset starts at the earliest one;
- producers are idempotent with `acks=all` and hash keys with murmur2 (Kafka's own partitioner),
  so a key lands on the same partition whichever library produced it, and records of one key
  keep their order;
- every wait is bounded; errors surface as `TransportError`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from ledger.kafka.ports import (  # noqa: F401 - the adapters' interfaces, re-exported
    Admin,
    Consumer,
    Headers,
    OnAssign,
    OnRevoke,
    Producer,
    Record,
    TopicPartition,
    Transport,
    TransportError,
)
from ledger.kafka.settings import KafkaSettings

T = TypeVar("T")
LIBRDKAFKA_LOG = logging.getLogger("consumers.transport.librdkafka")

POLL_RECORDS_MAX = 100_000
TIMEOUT_S_MAX = 600.0
ADMIN_TIMEOUT_S = 30.0


def transport(settings: KafkaSettings, bootstrap: str) -> Transport:
    """The transport of the client library `settings.client`, talking to `bootstrap`."""
    if settings.client == "confluent":
        return ConfluentTransport(settings, bootstrap)
    if settings.client == "kafka-python":
        return KafkaPythonTransport(settings, bootstrap)
    raise AssertionError(f"unknown client {settings.client!r}")


def _check_poll(max_records: int, timeout_s: float) -> None:
    assert 1 <= max_records <= POLL_RECORDS_MAX, max_records
    assert 0 <= timeout_s <= TIMEOUT_S_MAX, timeout_s


def _delivery_timeout_ms(settings: KafkaSettings) -> int:
    # both libraries insist that delivery may take at least one linger plus one request
    return max(settings.send_timeout_ms, settings.request_timeout_ms + settings.linger_ms)


def security_options(settings: KafkaSettings, keys: dict[str, str]) -> dict[str, str]:
    """The SASL and TLS settings that are set, under each client library's own names
    (`keys` maps the setting's name to the library's)."""
    password = settings.sasl_password
    values = {
        "sasl_mechanism": settings.sasl_mechanism,
        "sasl_username": settings.sasl_username,
        "sasl_password": None if password is None else password.get_secret_value(),
        "ssl_cafile": settings.ssl_cafile,
        "ssl_certfile": settings.ssl_certfile,
        "ssl_keyfile": settings.ssl_keyfile,
    }
    return {keys[name]: str(value) for name, value in values.items() if value is not None}


CONFLUENT_SECURITY_KEYS = {
    "sasl_mechanism": "sasl.mechanism",
    "sasl_username": "sasl.username",
    "sasl_password": "sasl.password",
    "ssl_cafile": "ssl.ca.location",
    "ssl_certfile": "ssl.certificate.location",
    "ssl_keyfile": "ssl.key.location",
}
KAFKA_PYTHON_SECURITY_KEYS = {
    "sasl_mechanism": "sasl_mechanism",
    "sasl_username": "sasl_plain_username",
    "sasl_password": "sasl_plain_password",
    "ssl_cafile": "ssl_cafile",
    "ssl_certfile": "ssl_certfile",
    "ssl_keyfile": "ssl_keyfile",
}


# --- confluent-kafka (librdkafka) ----------------------------------------------------------


def confluent_config(settings: KafkaSettings, bootstrap: str) -> dict[str, Any]:
    """librdkafka properties common to producers, consumers and admins (security included)."""
    config: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "client.id": settings.client_id,
        "security.protocol": settings.security_protocol,
        "socket.timeout.ms": settings.request_timeout_ms,
        # brokers close connections (idle ones, or all when they stop); librdkafka reconnects
        # by itself, so the line it prints on stderr each time is noise.
        "log.connection.close": False,
        # librdkafka's own log lines go to Python logging (served by poll/flush), not stderr
        "logger": LIBRDKAFKA_LOG,
    }
    config.update(security_options(settings, CONFLUENT_SECURITY_KEYS))
    return config


class ConfluentTransport:
    name = "confluent"

    def __init__(self, settings: KafkaSettings, bootstrap: str) -> None:
        self.settings = settings
        self.bootstrap = bootstrap

    def producer(self) -> Producer:
        return ConfluentProducer(self.settings, self.bootstrap)

    def consumer(self, group_id: str | None = None) -> Consumer:
        return ConfluentConsumer(self.settings, self.bootstrap, group_id)

    def admin(self) -> Admin:
        return ConfluentAdmin(self.settings, self.bootstrap)


class ConfluentProducer:
    def __init__(self, settings: KafkaSettings, bootstrap: str) -> None:
        import confluent_kafka

        self._send_timeout_s = settings.send_timeout_ms / 1000
        config = confluent_config(settings, bootstrap)
        config.update(
            {
                "acks": "all",
                "enable.idempotence": True,
                # Kafka's (and kafka-python's) partitioner, not librdkafka's CRC32 default:
                # the same key must land on the same partition whichever client produced it.
                "partitioner": "murmur2_random",
                "linger.ms": settings.linger_ms,
                "message.timeout.ms": _delivery_timeout_ms(settings),
                "request.timeout.ms": settings.request_timeout_ms,
                "queue.buffering.max.messages": 100_000,
                "queue.buffering.max.kbytes": 64 * 1024,
            }
        )
        self._producer = confluent_kafka.Producer(config)
        self._errors: list[str] = []
        self._buffer_error = BufferError

    def _on_delivery(self, error: Any, message: Any) -> None:
        if error is not None and len(self._errors) < 100:  # the first few say enough
            self._errors.append(f"{message.topic()}[{message.partition()}]: {error.str()}")

    def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes,
        headers: Headers | None = None,
        partition: int | None = None,
    ) -> None:
        deadline = time.monotonic() + self._send_timeout_s
        while True:
            try:
                if partition is None:
                    self._producer.produce(
                        topic,
                        value=value,
                        key=key,
                        headers=headers,  # type: ignore[arg-type]  # (str, bytes) pairs are fine
                        on_delivery=self._on_delivery,
                    )
                else:
                    self._producer.produce(
                        topic,
                        value=value,
                        key=key,
                        partition=partition,
                        headers=headers,  # type: ignore[arg-type]  # (str, bytes) pairs are fine
                        on_delivery=self._on_delivery,
                    )
                return
            except self._buffer_error:
                # the local queue is full: serve delivery reports until there is room
                if time.monotonic() >= deadline:
                    raise TransportError(
                        f"producer buffer still full after {self._send_timeout_s} s"
                    ) from None
                self._producer.poll(0.05)

    def flush(self, timeout_s: float) -> None:
        assert 0 <= timeout_s <= TIMEOUT_S_MAX, timeout_s
        pending = self._producer.flush(timeout_s)
        if self._errors:
            errors, self._errors = self._errors, []
            raise TransportError(f"{len(errors)}+ records not delivered: {errors[:3]}")
        if pending:
            raise TransportError(f"{pending} records still unacknowledged after {timeout_s} s")

    def close(self) -> None:
        # Records still pending are dropped, never delivered later behind the caller's back
        # (say, to a broker that restarted empty); callers flush first.
        self._producer.purge()
        self._producer.flush(0)  # serves the purged records' delivery reports


class ConfluentConsumer:
    def __init__(self, settings: KafkaSettings, bootstrap: str, group_id: str | None) -> None:
        import confluent_kafka

        self._kafka = confluent_kafka
        config = confluent_config(settings, bootstrap)
        config.update(
            {
                # librdkafka needs a group id even to commit; a consumer without one never
                # commits, so any fixed name does.
                "group.id": group_id or f"{settings.client_id}-ungrouped",
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "auto.offset.reset": "earliest",
                "allow.auto.create.topics": False,
                "session.timeout.ms": settings.session_timeout_ms,
                "heartbeat.interval.ms": settings.heartbeat_interval_ms,
                "max.poll.interval.ms": settings.max_poll_interval_ms,
                # bound the prefetch queue (default 64 MiB per partition)
                "queued.max.messages.kbytes": 16 * 1024,
            }
        )
        self._group_id = group_id
        self._consumer = confluent_kafka.Consumer(config)
        self._timeout_s = settings.request_timeout_ms / 1000
        self._manual: set[TopicPartition] = set()

    def _tp(self, partition: TopicPartition, offset: int | None = None) -> Any:
        if offset is None:
            return self._kafka.TopicPartition(partition.topic, partition.partition)
        return self._kafka.TopicPartition(partition.topic, partition.partition, offset)

    def assign(self, partitions: Sequence[TopicPartition]) -> None:
        self._manual = {TopicPartition(*p) for p in partitions}
        self._consumer.incremental_assign([self._tp(p) for p in self._manual])

    def subscribe(
        self,
        topics: Sequence[str],
        on_assign: OnAssign | None = None,
        on_revoke: OnRevoke | None = None,
    ) -> None:
        assert self._group_id is not None, "subscribe needs a group id"

        def assigned(consumer: Any, partitions: list[Any]) -> None:
            ours = [TopicPartition(p.topic, p.partition) for p in partitions]
            starts = (on_assign(ours) if on_assign else None) or {}
            for p, mine in zip(partitions, ours, strict=True):
                if mine in starts:
                    p.offset = starts[mine]
            consumer.assign(partitions)

        def revoked(consumer: Any, partitions: list[Any]) -> None:
            if on_revoke:
                on_revoke([TopicPartition(p.topic, p.partition) for p in partitions])
            consumer.unassign()

        self._consumer.subscribe(list(topics), on_assign=assigned, on_revoke=revoked)

    def assignment(self) -> set[TopicPartition]:
        return {TopicPartition(p.topic, p.partition) for p in self._consumer.assignment()}

    def poll(self, max_records: int, timeout_s: float) -> list[Record]:
        _check_poll(max_records, timeout_s)
        # consume(n, timeout) waits for all n records or the whole timeout; waiting for the
        # first record only, then taking what is already fetched, answers as soon as there is
        # something (as kafka-python does) and still reads in batches.
        first = self._consumer.poll(timeout_s)
        if first is None:
            return []
        messages: list[Any] = [first]
        if max_records > 1:
            messages += self._consumer.consume(max_records - 1, 0)
        records: list[Record] = []
        append = records.append
        for message in messages:
            error = message.error()
            if error is not None:
                if error.code() == self._kafka.KafkaError._PARTITION_EOF:
                    continue
                raise TransportError(f"consume failed: {error.str()}")
            headers = message.headers()
            append(
                Record(
                    message.topic(),
                    message.partition(),
                    message.offset(),
                    message.key(),
                    message.value(),
                    tuple(headers) if headers else (),
                )
            )
        return records

    def seek(self, partition: TopicPartition, offset: int) -> None:
        assert offset >= 0, offset
        partition = TopicPartition(*partition)
        if partition in self._manual:
            # librdkafka refuses seek() on a partition it has not started fetching yet
            # ("Erroneous state"); re-assigning it at the offset works in every state.
            self._consumer.incremental_unassign([self._tp(partition)])
            self._consumer.incremental_assign([self._tp(partition, offset)])
            return
        try:
            self._consumer.seek(self._tp(partition, offset))
        except self._kafka.KafkaException as error:
            raise TransportError(f"seek {partition} to {offset}: {error}") from error

    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        if not offsets:
            return
        assert all(offset >= 0 for offset in offsets.values()), offsets
        try:
            answer = self._consumer.commit(
                offsets=[self._tp(p, o) for p, o in offsets.items()], asynchronous=False
            )
        except self._kafka.KafkaException as error:
            raise TransportError(f"commit failed: {error}") from error
        failed = [p for p in answer or () if p.error is not None]
        if failed:
            raise TransportError(f"commit failed: {[(p.partition, p.error) for p in failed]}")

    def committed(self, partitions: Sequence[TopicPartition]) -> dict[TopicPartition, int | None]:
        try:
            answer = self._consumer.committed(
                [self._tp(p) for p in partitions], timeout=self._timeout_s
            )
        except self._kafka.KafkaException as error:
            raise TransportError(f"committed offsets: {error}") from error
        return {
            TopicPartition(p.topic, p.partition): (p.offset if p.offset >= 0 else None)
            for p in answer
        }

    def end_offsets(self, partitions: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
        answer: dict[TopicPartition, int] = {}
        for partition in partitions:
            try:
                _, high = self._consumer.get_watermark_offsets(
                    self._tp(partition), timeout=self._timeout_s, cached=False
                )
            except self._kafka.KafkaException as error:
                raise TransportError(f"end offsets: {error}") from error
            answer[TopicPartition(*partition)] = int(high)
        return answer

    def close(self) -> None:
        self._consumer.close()


class ConfluentAdmin:
    def __init__(self, settings: KafkaSettings, bootstrap: str) -> None:
        from confluent_kafka.admin import AdminClient

        self._kafka_error = __import__("confluent_kafka").KafkaError
        self._admin = AdminClient(confluent_config(settings, bootstrap))
        self._timeout_s = min(settings.request_timeout_ms / 1000, ADMIN_TIMEOUT_S)

    def create_topics(self, names: Sequence[str], partitions: int) -> list[str]:
        from confluent_kafka.admin import NewTopic

        assert 1 <= partitions <= 1024, partitions
        if not names:
            return []
        futures = self._admin.create_topics(
            [NewTopic(name, partitions, 1) for name in names],
            request_timeout=self._timeout_s,
            operation_timeout=self._timeout_s,
        )
        return self._settle(futures, "create topic", self._kafka_error.TOPIC_ALREADY_EXISTS)

    def _settle(self, futures: dict[str, Any], what: str, tolerated: Any) -> list[str]:
        """Wait for each topic's admin future; return the names done. An error with code
        `tolerated` (already exists, already gone) skips the name; any other is raised."""
        done: list[str] = []
        for name, future in futures.items():
            try:
                future.result(timeout=self._timeout_s)
            except Exception as error:
                kafka_error = error.args[0] if error.args else None
                if getattr(kafka_error, "code", lambda: None)() == tolerated:
                    continue
                raise TransportError(f"{what} {name}: {error}") from error
            done.append(name)
        return done

    def delete_topics(self, names: Sequence[str]) -> None:
        if not names:
            return
        futures = self._admin.delete_topics(
            list(names), request_timeout=self._timeout_s, operation_timeout=self._timeout_s
        )
        self._settle(futures, "delete topic", self._kafka_error.UNKNOWN_TOPIC_OR_PART)

    def list_topics(self) -> dict[str, int]:
        try:
            metadata = self._admin.list_topics(timeout=self._timeout_s)
        except Exception as error:
            raise TransportError(f"list topics: {error}") from error
        return {
            name: len(topic.partitions)
            for name, topic in metadata.topics.items()
            if not name.startswith("__")
        }

    def cluster_id(self) -> str | None:
        try:
            metadata = self._admin.list_topics(timeout=self._timeout_s)
        except Exception as error:
            raise TransportError(f"cluster id: {error}") from error
        return str(metadata.cluster_id) if metadata.cluster_id else None

    def close(self) -> None:
        pass  # librdkafka frees the handle with the object


# --- kafka-python --------------------------------------------------------------------------


def kafka_python_config(settings: KafkaSettings, bootstrap: str) -> dict[str, Any]:
    """kafka-python settings common to producers, consumers and admins (security included)."""
    config: dict[str, Any] = {
        "bootstrap_servers": bootstrap.split(","),
        "client_id": settings.client_id,
        "security_protocol": settings.security_protocol,
        "request_timeout_ms": settings.request_timeout_ms,
    }
    config.update(security_options(settings, KAFKA_PYTHON_SECURITY_KEYS))
    return config


class KafkaPythonTransport:
    name = "kafka-python"

    def __init__(self, settings: KafkaSettings, bootstrap: str) -> None:
        self.settings = settings
        self.bootstrap = bootstrap

    def producer(self) -> Producer:
        return KafkaPythonProducer(self.settings, self.bootstrap)

    def consumer(self, group_id: str | None = None) -> Consumer:
        return KafkaPythonConsumer(self.settings, self.bootstrap, group_id)

    def admin(self) -> Admin:
        return KafkaPythonAdmin(self.settings, self.bootstrap)


class KafkaPythonProducer:
    def __init__(self, settings: KafkaSettings, bootstrap: str) -> None:
        import kafka

        config = kafka_python_config(settings, bootstrap)
        config.update(
            {
                "acks": "all",
                "enable_idempotence": True,
                # never let a send create a topic with the broker's default partition count
                "allow_auto_create_topics": False,
                "linger_ms": settings.linger_ms,
                "batch_size": 64 * 1024,
                "max_block_ms": settings.send_timeout_ms,
                "delivery_timeout_ms": _delivery_timeout_ms(settings),
            }
        )
        self._producer = kafka.KafkaProducer(**config)
        self._errors: list[str] = []
        self._errors_lock = threading.Lock()  # errbacks run on the sender thread

    def _on_error(self, error: BaseException) -> None:
        with self._errors_lock:
            if len(self._errors) < 100:
                self._errors.append(repr(error))

    def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes,
        headers: Headers | None = None,
        partition: int | None = None,
    ) -> None:
        try:
            future = self._producer.send(
                topic,
                value=value,
                key=key,
                headers=list(headers) if headers else None,
                partition=partition,
            )
        except Exception as error:  # buffer full past max_block_ms, unknown topic, ...
            raise TransportError(f"send to {topic}: {error!r}") from error
        future.add_errback(self._on_error)

    def flush(self, timeout_s: float) -> None:
        assert 0 <= timeout_s <= TIMEOUT_S_MAX, timeout_s
        try:
            self._producer.flush(timeout=timeout_s)
        except Exception as error:  # KafkaTimeoutError: records still pending
            raise TransportError(f"flush: {error!r}") from error
        with self._errors_lock:
            errors, self._errors = self._errors, []
        if errors:
            raise TransportError(f"{len(errors)}+ records not delivered: {errors[:3]}")

    def close(self) -> None:
        self._producer.close(timeout=0)


class KafkaPythonConsumer:
    def __init__(self, settings: KafkaSettings, bootstrap: str, group_id: str | None) -> None:
        import kafka

        self._kafka = kafka
        config = kafka_python_config(settings, bootstrap)
        config.update(
            {
                "group_id": group_id,
                "enable_auto_commit": False,
                "auto_offset_reset": "earliest",
                # a metadata request must not create the topic with the broker's default
                # partition count before the ledger creates it with its own (see topics.py)
                "allow_auto_create_topics": False,
                "session_timeout_ms": settings.session_timeout_ms,
                "heartbeat_interval_ms": settings.heartbeat_interval_ms,
                "max_poll_interval_ms": settings.max_poll_interval_ms,
                "max_poll_records": POLL_RECORDS_MAX,
                "fetch_max_bytes": 16 * 1024 * 1024,
            }
        )
        self._consumer = kafka.KafkaConsumer(**config)
        self._group_id = group_id
        self._timeout_ms = settings.request_timeout_ms

    def _tp(self, partition: TopicPartition) -> Any:
        return self._kafka.TopicPartition(partition.topic, partition.partition)

    def assign(self, partitions: Sequence[TopicPartition]) -> None:
        self._consumer.assign([self._tp(p) for p in partitions])

    def subscribe(
        self,
        topics: Sequence[str],
        on_assign: OnAssign | None = None,
        on_revoke: OnRevoke | None = None,
    ) -> None:
        assert self._group_id is not None, "subscribe needs a group id"
        consumer = self._consumer
        base = self._kafka.ConsumerRebalanceListener

        class Listener(base):  # type: ignore[misc, valid-type]
            def on_partitions_revoked(self, revoked: Iterable[Any]) -> None:
                if on_revoke:
                    on_revoke([TopicPartition(p.topic, p.partition) for p in revoked])

            def on_partitions_assigned(self, assigned: Iterable[Any]) -> None:
                ours = {TopicPartition(p.topic, p.partition): p for p in assigned}
                starts = (on_assign(list(ours)) if on_assign else None) or {}
                for mine, offset in starts.items():
                    consumer.seek(ours[mine], offset)

        consumer.subscribe(list(topics), listener=Listener())

    def assignment(self) -> set[TopicPartition]:
        return {TopicPartition(p.topic, p.partition) for p in self._consumer.assignment()}

    def poll(self, max_records: int, timeout_s: float) -> list[Record]:
        _check_poll(max_records, timeout_s)
        try:
            batches = self._consumer.poll(timeout_ms=int(timeout_s * 1000), max_records=max_records)
        except Exception as error:
            raise TransportError(f"poll: {error!r}") from error
        records: list[Record] = []
        for batch in batches.values():
            for message in batch:
                records.append(
                    Record(
                        message.topic,
                        message.partition,
                        message.offset,
                        message.key,
                        message.value,
                        tuple(message.headers or ()),
                    )
                )
        return records

    def seek(self, partition: TopicPartition, offset: int) -> None:
        assert offset >= 0, offset
        try:
            self._consumer.seek(self._tp(TopicPartition(*partition)), offset)
        except Exception as error:  # IllegalStateError: not assigned
            raise TransportError(f"seek {partition} to {offset}: {error!r}") from error

    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        if not offsets:
            return
        assert all(offset >= 0 for offset in offsets.values()), offsets
        assert self._group_id is not None, "commit needs a group id"
        meta = self._kafka.structs.OffsetAndMetadata
        try:
            self._consumer.commit(
                {self._tp(p): meta(o, "", -1) for p, o in offsets.items()},
                timeout_ms=self._timeout_ms,
            )
        except Exception as error:
            raise TransportError(f"commit failed: {error!r}") from error

    def committed(self, partitions: Sequence[TopicPartition]) -> dict[TopicPartition, int | None]:
        answer: dict[TopicPartition, int | None] = {}
        for partition in partitions:
            try:
                offset = self._consumer.committed(self._tp(partition), timeout_ms=self._timeout_ms)
            except Exception as error:
                raise TransportError(f"committed offsets: {error!r}") from error
            answer[TopicPartition(*partition)] = offset
        return answer

    def end_offsets(self, partitions: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
        answer: dict[TopicPartition, int] = {}
        for partition in partitions:
            tp = self._tp(partition)
            try:
                high = self._consumer.end_offsets([tp])[tp]
            except Exception as error:
                raise TransportError(f"end offsets: {error!r}") from error
            answer[TopicPartition(*partition)] = int(high)
        return answer

    def close(self) -> None:
        self._consumer.close(autocommit=False)


class KafkaPythonAdmin:
    def __init__(self, settings: KafkaSettings, bootstrap: str) -> None:
        from kafka.admin import KafkaAdminClient

        self._admin = KafkaAdminClient(**kafka_python_config(settings, bootstrap))
        self._timeout_ms = min(settings.request_timeout_ms, int(ADMIN_TIMEOUT_S * 1000))

    def _retrying(self, what: str, call: Callable[[], T]) -> T:
        """kafka-python's admin does not reconnect by itself: after a broker restart its
        next call fails with NodeNotReadyError. Retry retriable errors, within the timeout."""
        deadline = time.monotonic() + self._timeout_ms / 1000
        backoff_s = 0.05
        while True:
            try:
                return call()
            except Exception as error:
                retriable = getattr(error, "retriable", False)
                if not retriable or time.monotonic() + backoff_s > deadline:
                    raise TransportError(f"{what}: {error!r}") from error
            time.sleep(backoff_s)
            backoff_s = min(backoff_s * 2, 1.0)

    def create_topics(self, names: Sequence[str], partitions: int) -> list[str]:
        from kafka.errors import TopicAlreadyExistsError, for_code

        assert 1 <= partitions <= 1024, partitions
        if not names:
            return []
        request = {name: {"num_partitions": partitions, "replication_factor": 1} for name in names}
        answer = self._retrying(
            f"create topics {list(names)}",
            lambda: self._admin.create_topics(
                request, timeout_ms=self._timeout_ms, raise_errors=False
            ),
        )
        created: list[str] = []
        for topic in answer["topics"]:
            error_type = for_code(topic["error_code"])
            if topic["error_code"] == 0:
                created.append(topic["name"])
            elif error_type is not TopicAlreadyExistsError:
                raise TransportError(f"create topic {topic['name']}: {error_type.__name__}")
        return created

    def delete_topics(self, names: Sequence[str]) -> None:
        from kafka.errors import UnknownTopicOrPartitionError, for_code

        if not names:
            return
        answer = self._retrying(
            f"delete topics {list(names)}",
            lambda: self._admin.delete_topics(
                list(names), timeout_ms=self._timeout_ms, raise_errors=False
            ),
        )
        for topic in answer["topics"]:
            error_type = for_code(topic["error_code"])
            if topic["error_code"] != 0 and error_type is not UnknownTopicOrPartitionError:
                raise TransportError(f"delete topic {topic['name']}: {error_type.__name__}")

    def list_topics(self) -> dict[str, int]:
        described = self._retrying("list topics", self._admin.describe_topics)
        return {
            topic["name"]: len(topic["partitions"])
            for topic in described
            if not topic["name"].startswith("__")
        }

    def cluster_id(self) -> str | None:
        described = self._retrying("cluster id", self._admin.describe_cluster)
        return described.get("cluster_id") or None

    def close(self) -> None:
        self._admin.close()
