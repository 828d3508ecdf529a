"""Envelope v2 (issue 12 point 2): the records of each partition are hash-chained, so a
subscriber finds a missing, altered or reordered record from the log alone (`LogChain`), and a
gap the relay heals by re-sending is not a problem."""

from __future__ import annotations

import random

import orjson
import pytest

from ledger.events.envelope import (
    GENESIS,
    ChainHead,
    Envelope,
    LogChain,
    link_of,
    link_record,
    parse_record,
    unlinked_bytes,
    watermark_bytes,
)
from ledger.kafka.ports import murmur2, partition_of

STORE_HASH = "ab" * 32


def v1(position: int, part: int = 0, note: str = "x") -> bytes:
    return orjson.dumps({
        "envelope_version": 1, "event_id": f"00000000-0000-0000-0000-000000000001/{position}",
        "type": "GroupCreated", "schema_version": 1,
        "aggregate_id": "00000000-0000-0000-0000-000000000001", "aggregate_version": position,
        "valid_time": "2025-01-01", "recorded_time": "2025-01-01T00:00:00Z",
        "position": position, "part": part, "parts": part + 1, "key": "C1",
        "payload": {"note": note},
    })


def chain(positions: list[int]) -> list[bytes]:
    """v2 records of one partition, chained as the relay chains them."""
    head, out = GENESIS, []
    for position in positions:
        value, link = link_record(v1(position), head, STORE_HASH)
        head = ChainHead(position, 0, link)
        out.append(value)
    return out


def check(values: list[bytes], partition: int = 0) -> LogChain:
    checker = LogChain()
    for offset, value in enumerate(values):
        checker.add(partition, offset, value)
    checker.finish()
    return checker


def test_a_v2_record_is_a_v1_record_plus_its_chain_and_parses() -> None:
    first, second = chain([3, 5])
    envelope = parse_record(second)
    assert isinstance(envelope, Envelope) and envelope.envelope_version == 2
    assert envelope.previous == ChainHead(3, 0, orjson.loads(first)["link"])
    assert envelope.store_hash == STORE_HASH
    assert link_of(second) == envelope.link
    assert second.endswith(b'"link":"%s"}' % envelope.link.encode())
    assert orjson.loads(unlinked_bytes(second)) == orjson.loads(v1(5))
    with pytest.raises(ValueError, match="version 2 needs"):
        Envelope.model_validate({**orjson.loads(second), "link": None})
    with pytest.raises(ValueError, match="version 1 has no chain fields"):
        Envelope.model_validate({**orjson.loads(second), "envelope_version": 1})


def test_an_intact_log_has_no_problems_and_duplicates_are_fine() -> None:
    records = chain([1, 2, 4, 7])
    checker = check([*records, *records[1:]])  # a re-send after a crash
    assert checker.problems == [] and checker.linked == 7


def test_a_removed_record_is_a_gap_named_by_its_neighbours() -> None:
    records = chain([1, 2, 4, 7])
    checker = check([records[0], records[1], records[3]])
    (problem,) = checker.problems
    assert problem.offset == 2 and problem.position == 7
    assert "gap: after position 2 part 0, the records up to position 4 part 0 are missing" \
        in problem.what


def test_a_removed_tail_is_found_by_the_watermark_head() -> None:
    records = chain([1, 2, 4])
    last = parse_record(records[-1])
    assert isinstance(last, Envelope) and last.head is not None
    mark = watermark_bytes(4, 0, last.head)
    checker = check([records[0], records[1], mark])
    (problem,) = checker.problems
    assert "chain ends at position 4 part 0, the last one read is position 2" in problem.what
    assert check([*records, mark]).problems == []


def test_an_altered_record_is_named_whether_or_not_its_link_was_recomputed() -> None:
    records = chain([1, 2, 4])
    edited = records[1].replace(b'"note":"x"', b'"note":"y"')
    (problem,) = check([records[0], edited, records[2]]).problems
    assert problem.offset == 1 and "altered: its bytes do not hash to its link" in problem.what
    # the forger recomputes the edited record's link: the next record no longer follows it
    forged, _ = link_record(v1(2, note="y"), parse_record(records[0]).head, STORE_HASH)  # type: ignore[union-attr,arg-type]
    (problem,) = check([records[0], forged, records[2]]).problems
    assert problem.offset == 2
    assert "does not follow the record before it (position 2 part 0)" in problem.what


def test_a_gap_healed_by_the_relays_re_send_is_no_problem() -> None:
    r1, r2, r3, r4 = chain([1, 2, 3, 4])
    # r2's delivery timed out while r3 went through; the relay re-sends from r1
    checker = check([r1, r3, r2, r3, r4])
    assert checker.problems == [] and checker.healed == 1


def test_a_gap_still_open_at_a_watermark_past_it_is_named_there() -> None:
    r1, r2, r3 = chain([1, 2, 3])
    head = parse_record(r3).head  # type: ignore[union-attr]
    checker = check([r1, r3, watermark_bytes(3, 0, head)])
    (problem,) = checker.problems
    assert problem.offset == 1 and "not healed by the watermark at offset 2" in problem.what


def test_a_reordered_pair_is_named_out_of_order() -> None:
    r1, r2, r3 = chain([1, 2, 3])
    (problem,) = check([r1, r3, r2]).problems
    assert problem.what.startswith("out of order: the record at offset 1 (position 3)")


def test_v1_records_then_a_chain_from_the_start_is_an_upgrade_not_a_gap() -> None:
    records = [v1(1), v1(2), *chain([3, 4])]
    assert check(records).problems == []
    # but a chain that starts anew in the middle of a v2 partition is a gap
    r1, r2 = chain([1, 2])
    r3, = chain([3])  # previous = the zeros
    (problem,) = check([r1, r2, r3]).problems
    assert "gap" in problem.what or "follow" in problem.what


def test_a_v1_record_among_chained_ones_is_named_and_changes_nothing() -> None:
    r1, r2 = chain([1, 2])
    checker = LogChain()
    verdicts = [checker.add(0, n, v) for n, v in enumerate([r1, v1(5), r2])]
    assert verdicts == [LogChain.ACCEPTED, LogChain.PROBLEM, LogChain.ACCEPTED]
    (problem,) = checker.finish()
    assert problem.offset == 1 and "v1 record (unchained) after chained" in problem.what


def test_a_subscriber_resuming_mid_log_anchors_at_its_first_record() -> None:
    records = chain([1, 2, 3, 4])
    assert LogChain().add(0, 2, records[2]) == LogChain.HELD  # from the start: a gap
    resuming = LogChain(anchor=True)
    assert [resuming.add(0, n, v) for n, v in enumerate(records[2:], start=2)] == [
        LogChain.ACCEPTED, LogChain.ACCEPTED]
    resuming.forget(0)  # revoked, then assigned again further on
    assert resuming.add(0, 3, records[3]) == LogChain.ACCEPTED
    assert resuming.finish() == []


def test_partitions_are_checked_apart() -> None:
    checker = LogChain()
    for offset, value in enumerate(chain([1, 3])):
        checker.add(0, offset, value)
    for offset, value in enumerate(chain([2, 4])):
        checker.add(1, offset, value)
    assert checker.finish() == []


def test_partition_of_is_kafkas_default_partitioner() -> None:
    partitioner = pytest.importorskip("kafka.partitioner.default")
    generator = random.Random(12)
    for _ in range(2000):
        key = bytes(generator.randrange(256) for _ in range(generator.randrange(0, 40)))
        assert murmur2(key) & 0xFFFFFFFF == partitioner.murmur2(key)
        count = generator.randrange(1, 64)
        assert partition_of(key, count) == (partitioner.murmur2(key) & 0x7FFFFFFF) % count
    assert partition_of(b"C1", 4) == partition_of(b"C1", 4)
