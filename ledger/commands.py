"""The contract's commands (sections 1, 4 and 5 of v2) as pydantic models, and how a JSON
line becomes one.

A line is decoded with orjson; when it holds a JSON number with a fraction or exponent it is
decoded again with the standard library reading numbers as `Decimal`, so that no value ever
passes through a binary float. Every problem becomes an `InvalidCommand` naming the field and
the offending value.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any, BinaryIO, ClassVar, Literal

import orjson
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    model_validator,
)

from ledger.errors import InvalidCommand
from ledger.rules import Tier
from ledger.text import printable, unstorable

#: Upper bounds on what a command may hold ("put a limit on everything").
ID_LENGTH_MAX = 200
TEXT_LENGTH_MAX = 2000
TIERS_MAX = 100
PRODUCTS_MAX = 10_000
LINE_BYTES_MAX = 1 << 20

#: Decimal inputs: at most 18 places, at most 30 digits before the point.
PLACES_MAX = 18
DIGITS_MAX = 48

#: A JSON number with a fraction or exponent, or of 19 digits or more (orjson reads those
#: through a float), right after `:`, `[` or `,` (outside strings it
#: can only be a number; inside a string a match just sends the line down the exact path).
_JSON_FRACTION = re.compile(rb"[:\[,]\s*-?(?:\d+(?:\.\d|[eE])|\d{19})")


#: The one range of dates and timestamps the ledger accepts, in every command and every query
#: (README, "Contract decisions"): wide enough for any rebate deal, narrow enough that no
#: date arithmetic (a day after a period's end, a timestamp's UTC instant) leaves the calendar.
DAY_MIN = date(1900, 1, 1)
DAY_MAX = date(2199, 12, 31)
MOMENT_MIN = datetime(1900, 1, 1, tzinfo=UTC)
MOMENT_MAX = datetime(2199, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)
DATE_RANGE_TEXT = f"{DAY_MIN} to {DAY_MAX}"

#: How an agreement without an end is written: a far period_end inside the range.
OPEN_ENDED_HINT = (
    f"an agreement without an end is written with a far period_end inside the range, "
    f"such as {DAY_MAX}"
)

_DAY_TEXT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
#: The start every timestamp must have (the rest, offset included, pydantic checks): a unix
#: time such as "1735689600" would otherwise be taken for a timestamp.
_MOMENT_TEXT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}")


def day_out_of_range(day: date, field: str = "") -> str | None:
    """Why `day` is refused (None: it is inside the ledger's range)."""
    if DAY_MIN <= day <= DAY_MAX:
        return None
    hint = f"; {OPEN_ENDED_HINT}" if field == "period_end" and day > DAY_MAX else ""
    return f"{day.isoformat()} is outside the dates the ledger accepts, {DATE_RANGE_TEXT}{hint}"


def moment_in_range(moment: datetime) -> datetime:
    """`moment` (timezone-aware) as a UTC instant; `ValueError` when it is outside the range.

    The local year is checked before the conversion: converting 9999-12-31T23:59:59-01:00 to
    UTC would leave the calendar (OverflowError)."""
    assert moment.tzinfo is not None
    if DAY_MIN.year <= moment.year <= DAY_MAX.year:
        utc = moment.astimezone(UTC)
        if MOMENT_MIN <= utc <= MOMENT_MAX:
            return utc
    raise ValueError(f"{moment.isoformat()} is outside the timestamps the ledger accepts, "
                     f"{_moment_text(MOMENT_MIN)} to {_moment_text(MOMENT_MAX)}")


def _moment_text(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _day(value: object, info: ValidationInfo) -> date:
    """A date: a `YYYY-MM-DD` string of ASCII digits (JSON) or a `date`, inside the range."""
    if isinstance(value, str) and _DAY_TEXT.fullmatch(value):
        try:
            day = date.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{_show(value)} is not a calendar date") from None
    elif isinstance(value, date) and not isinstance(value, datetime):
        day = value
    else:
        raise ValueError(f"expected a date YYYY-MM-DD, got {_show(value)}")
    refused = day_out_of_range(day, info.field_name or "")
    if refused is not None:
        raise ValueError(refused)
    return day


def _timestamp_text(value: object) -> object:
    """Strict about the kind of value (a string or a `datetime`, never a number), lax parsing
    after it: pydantic's strict mode refuses the string a before-validator hands on."""
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _MOMENT_TEXT.match(value):
        raise ValueError(
            f"expected an ISO 8601 timestamp with an offset (2025-04-02T09:00:00Z), "
            f"got {_show(value)}"
        )
    return value


#: Exact decimals: JSON strings or numbers (numbers with a fraction or exponent never reach
#: pydantic as JSON numbers: `parse_line` turns them into strings first, see there).
Dec = Annotated[
    Decimal,
    Field(allow_inf_nan=False, max_digits=DIGITS_MAX, decimal_places=PLACES_MAX),
]
#: The serializer is said outright: with a plain validator alone, pydantic 2.14 checks the ISO
#: text it wrote against `date` and warns "Expected `date`" on every `model_dump_json()`.
Day = Annotated[
    date,
    PlainValidator(_day),
    PlainSerializer(date.isoformat, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date"}, mode="serialization"),
]
Timestamp = Annotated[
    AwareDatetime, BeforeValidator(_timestamp_text), AfterValidator(moment_in_range)
]

#: What an id may not hold (issue 10): control characters (C0, DEL, C1: a tab or a newline in
#: an id makes two ids that print alike) and the bidirectional controls (embeddings,
#: overrides, isolates, the directional marks) that reorder how an id is shown ("Trojan
#: Source"): `A1\u202e` would print as another id; and the invisible format characters (soft
#: hyphen, zero-width space, non-joiner and joiner, word joiner, zero-width no-break space) that
#: make `A1` and `A\u200b1` two ids printed alike. Checked by pydantic-core's own regex.
ID_INVISIBLE_CHARS = "\u00ad\u200b\u200c\u200d\u2060\ufeff"
ID_REFUSED_CHARS = ("\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029"
                    "\u202a-\u202e\u2066-\u2069" + ID_INVISIBLE_CHARS)
_ID_PATTERN = f"^[^{ID_REFUSED_CHARS}]*$"
_ID_REFUSED = re.compile(f"[{ID_REFUSED_CHARS}]")
Id = Annotated[str, StringConstraints(strict=True, min_length=1, max_length=ID_LENGTH_MAX,
                                      pattern=_ID_PATTERN)]
Text = Annotated[str, StringConstraints(strict=True, min_length=1, max_length=TEXT_LENGTH_MAX)]
Currency = Annotated[str, StringConstraints(strict=True, pattern=r"^[A-Z]{3}$")]
Positive = Annotated[Dec, Field(gt=0)]
Basis = Literal["quantity", "amount"]
RateKind = Literal["per_unit", "percent"]
TierMethod = Literal["retroactive", "incremental"]
AccrualMethod = Literal["earned", "forecast"]


class TierIn(BaseModel):
    # `from` only (contract 1): `threshold` is this model's attribute, not a key of the line
    model_config = ConfigDict(extra="forbid", frozen=True)
    threshold: Dec = Field(alias="from", ge=0)
    rate: Dec = Field(ge=0)

    def to_tier(self) -> Tier:
        return Tier(threshold=self.threshold, rate=self.rate)


def _check_tier_order(tiers: list[TierIn]) -> list[TierIn]:
    for index in range(1, len(tiers)):
        if tiers[index].threshold <= tiers[index - 1].threshold:
            raise ValueError(
                f"tiers[{index}].from must be greater than tiers[{index - 1}].from "
                f"(tiers strictly increasing), got {tiers[index].threshold} after "
                f"{tiers[index - 1].threshold}"
            )
    return tiers


Tiers = Annotated[
    list[TierIn], Field(min_length=1, max_length=TIERS_MAX), AfterValidator(_check_tier_order)
]
Products = Annotated[list[Id], Field(min_length=1, max_length=PRODUCTS_MAX)]


class Command(BaseModel):
    """Fields every command may carry."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: ClassVar[str]
    recorded_at: Timestamp | None = None


class CreateAgreement(Command):
    """Contract 1 and 4: an agreement names exactly one of `customer_id` (a customer's own
    agreement) or `group_id` (a buying group's), and optionally the program it was made from."""

    kind: ClassVar[str] = "create_agreement"
    type: Literal["create_agreement"]
    agreement_id: Id
    customer_id: Id | None = None
    group_id: Id | None = None
    program_id: Id | None = None
    currency: Currency
    period_start: Day
    period_end: Day
    basis: Basis
    tier_method: TierMethod
    rate_kind: RateKind
    tiers: Tiers
    products: Products | None = None
    cap: Positive | None = None
    accrual_method: AccrualMethod = "earned"
    forecast_basis: Positive | None = None

    @model_validator(mode="after")
    def _one_owner(self) -> CreateAgreement:
        if self.customer_id is None and self.group_id is None:
            raise ValueError(
                "customer_id is required for create_agreement (or group_id, for a buying "
                "group's agreement): an agreement names exactly one of them"
            )
        if self.customer_id is not None and self.group_id is not None:
            raise ValueError(
                "customer_id and group_id: an agreement names exactly one of customer_id (a "
                "customer's own agreement) or group_id (a buying group's agreement), got both"
            )
        return self


class CloseStandIn(Command):
    """Not a contract command: carries the `recorded_at` of `close-period` through the same
    rules as a command's (`Batch.recorded_time`)."""

    kind: ClassVar[str] = "close_period"


class AmendAgreement(Command):
    kind: ClassVar[str] = "amend_agreement"
    type: Literal["amend_agreement"]
    agreement_id: Id
    effective_from: Day
    tiers: Tiers | None = None
    cap: Positive | None = None
    products: Products | None = None
    period_end: Day | None = None
    basis: Basis | None = None
    tier_method: TierMethod | None = None
    rate_kind: RateKind | None = None
    accrual_method: AccrualMethod | None = None
    forecast_basis: Positive | None = None

    #: Fields that may be sent as null: `cap` (removes the cap), `products` (every product).
    NULLABLE: ClassVar[frozenset[str]] = frozenset({"cap", "products"})

    @model_validator(mode="after")
    def _check(self) -> AmendAgreement:
        changed = self.changes()
        if not changed:
            raise ValueError(
                "an amendment must change at least one of tiers, cap, products, period_end, "
                "basis, tier_method, rate_kind, accrual_method, forecast_basis"
            )
        for name, value in changed.items():
            if value is None and name not in self.NULLABLE:
                raise ValueError(f"{name} may not be null (only cap and products may)")
        return self

    def changes(self) -> dict[str, Any]:
        """The terms this amendment sets, by field (None for cap: removed)."""
        fixed = {"type", "agreement_id", "effective_from", "recorded_at"}
        return {
            name: getattr(self, name) for name in self.model_fields_set if name not in fixed
        }


class ReviseForecast(Command):
    kind: ClassVar[str] = "revise_forecast"
    type: Literal["revise_forecast"]
    agreement_id: Id
    forecast_basis: Positive
    effective_from: Day


class RecordSale(Command):
    kind: ClassVar[str] = "record_sale"
    type: Literal["record_sale"]
    sale_id: Id
    customer_id: Id
    product_id: Id
    quantity: Dec
    amount: Dec
    currency: Currency
    invoice_date: Day
    # The rule that quantity and amount carry the same sign is checked by the handler
    # (ledger.handlers.record_sale): on the sale path a model validator costs a fifth of the
    # validation time.


class ReverseSale(Command):
    kind: ClassVar[str] = "reverse_sale"
    type: Literal["reverse_sale"]
    sale_id: Id
    reversed_on: Day


class SubmitClaim(Command):
    kind: ClassVar[str] = "submit_claim"
    type: Literal["submit_claim"]
    claim_id: Id
    agreement_id: Id
    amount: Positive
    submitted_on: Day


class ApproveClaim(Command):
    kind: ClassVar[str] = "approve_claim"
    type: Literal["approve_claim"]
    claim_id: Id
    approved_on: Day
    approved_amount: Positive | None = None


class RejectClaim(Command):
    kind: ClassVar[str] = "reject_claim"
    type: Literal["reject_claim"]
    claim_id: Id
    rejected_on: Day
    reason: Text


class SettleClaim(Command):
    kind: ClassVar[str] = "settle_claim"
    type: Literal["settle_claim"]
    claim_id: Id
    paid_on: Day
    payment_ref: Text
    paid_amount: Positive | None = None


class WriteOff(Command):
    """Contract 1 and 5: with a `write_off_id`, sending the same write-off again is a
    duplicate and it can be reversed by `reverse_write_off`."""

    kind: ClassVar[str] = "write_off"
    type: Literal["write_off"]
    agreement_id: Id
    amount: Positive
    effective_date: Day
    reason: Text
    write_off_id: Id | None = None


class ReverseWriteOff(Command):
    """Contract 5: the write-off no longer counts from `reversed_on` on."""

    kind: ClassVar[str] = "reverse_write_off"
    type: Literal["reverse_write_off"]
    write_off_id: Id
    reversed_on: Day
    reason: Text


class CreateGroup(Command):
    """Contract 4: a buying group (co-operative, franchise, purchasing organisation)."""

    kind: ClassVar[str] = "create_group"
    type: Literal["create_group"]
    group_id: Id
    name: Text | None = None


class JoinGroup(Command):
    """Contract 4: the customer is a member from `effective_from` on (laid in recorded order
    with the group's other joins and leaves of that customer)."""

    kind: ClassVar[str] = "join_group"
    type: Literal["join_group"]
    group_id: Id
    customer_id: Id
    effective_from: Day


class LeaveGroup(Command):
    """Contract 4: `effective_from` is the first day the customer is no longer a member."""

    kind: ClassVar[str] = "leave_group"
    type: Literal["leave_group"]
    group_id: Id
    customer_id: Id
    effective_from: Day


COMMAND_TYPES: dict[str, type[Command]] = {
    cls.kind: cls
    for cls in (
        CreateAgreement,
        AmendAgreement,
        ReviseForecast,
        RecordSale,
        ReverseSale,
        SubmitClaim,
        ApproveClaim,
        RejectClaim,
        SettleClaim,
        WriteOff,
        ReverseWriteOff,
        CreateGroup,
        JoinGroup,
        LeaveGroup,
    )
}

#: Underscores in each field's name (= its key in a line; a tier's `from` and `rate` have none).
_UNDERSCORES = {name: name.count("_") for model in COMMAND_TYPES.values()
                for name in model.model_fields}
#: Per command type whose only optional field is `recorded_at`: underscores in its type and
#: its required keys.
_FIXED_UNDERSCORES = {
    model: kind.count("_") + sum(_UNDERSCORES[n] for n, f in model.model_fields.items()
                                 if f.is_required())
    for kind, model in COMMAND_TYPES.items()
    if {n for n, f in model.model_fields.items() if not f.is_required()} == {"recorded_at"}
}

AnyCommand = Annotated[
    CreateAgreement
    | AmendAgreement
    | ReviseForecast
    | RecordSale
    | ReverseSale
    | SubmitClaim
    | ApproveClaim
    | RejectClaim
    | SettleClaim
    | WriteOff
    | ReverseWriteOff
    | CreateGroup
    | JoinGroup
    | LeaveGroup,
    Field(discriminator="type"),
]
_COMMAND = TypeAdapter(AnyCommand)


#: What a rejection of an overlong line says.
TOO_LONG = (
    f"line is longer than {LINE_BYTES_MAX} bytes (1 MiB, not counting its line ending); "
    "split the command or remove what it does not need"
)


def line_bytes(raw: bytes) -> int:
    """The length of a line as the limit counts it: its bytes without the line ending (`\n`
    or `\r\n`) it may end with."""
    if raw.endswith(b"\n"):
        return len(raw) - (2 if raw.endswith(b"\r\n") else 1)
    return len(raw)


#: How much of an overlong line is read at a time while skipping it.
SKIP_BYTES = 1 << 16


#: What some Windows tools write before the first line of a UTF-8 file.
UTF8_BOM = b"\xef\xbb\xbf"


def whole_input_shape(head: bytes) -> str | None:
    """What the start of an input says it is when it is not JSON Lines at all: "a JSON array"
    (a command is an object, so a line never starts with `[`) or "a CSV file" (a first line
    without `{` that holds two commas or more, and a second that is no object either). Read as
    JSON Lines, such a file would be one rejection per physical line, kept forever."""
    text = head.removeprefix(UTF8_BOM).lstrip()
    if text.startswith(b"["):
        return "a JSON array"
    lines = text.splitlines()
    if (lines and b"{" not in lines[0] and lines[0].count(b",") >= 2
            and (len(lines) < 2 or not lines[1].lstrip().startswith(b"{"))):
        return "a CSV file"
    return None


def bounded_lines(stream: BinaryIO) -> Iterator[bytes]:
    """The lines of `stream`, each read with a bound: a line longer than `LINE_BYTES_MAX` is
    never held whole. It comes out as its first `LINE_BYTES_MAX + 2` bytes (which
    `parse_line` rejects as too long) and the rest of it, up to the next newline, is read in
    pieces of 64 KiB and dropped. At most `LINE_BYTES_MAX + 2` bytes are read at once: a line
    of exactly `LINE_BYTES_MAX` bytes with its `\r\n` fits."""
    bound = LINE_BYTES_MAX + 2
    first = True
    while True:
        line = stream.readline(bound)
        if not line:
            return
        overlong = len(line) == bound and not line.endswith(b"\n")
        if overlong:
            while True:  # the rest of an overlong line: skipped, never held
                piece = stream.readline(SKIP_BYTES)
                if not piece or piece.endswith(b"\n"):
                    break
        if first and not overlong:  # a UTF-8 byte-order mark (Windows editors, Excel) starts
            # the file, not line 1; an overlong line keeps it and its length, to be refused
            line = line.removeprefix(UTF8_BOM)
            if not line:  # the file was the mark alone
                return
        first = False
        yield line


def lines_of(body: bytes) -> list[bytes]:
    """The lines of a body of JSON Lines held in memory (an HTTP request's, a draft file's),
    split as `rebate-ledger apply` splits a file (`bounded_lines`): at "\n", a leading
    byte-order mark dropped."""
    return list(bounded_lines(io.BytesIO(body)))


def decode_line(line: bytes | str) -> Any:
    """Decode one JSON line; numbers with a fraction or exponent become `Decimal`."""
    raw = line.encode("utf-8", "surrogatepass") if isinstance(line, str) else line
    if line_bytes(raw) > LINE_BYTES_MAX:
        raise InvalidCommand("", TOO_LONG)
    try:
        if _JSON_FRACTION.search(raw) is None:
            return orjson.loads(raw)
        return json.loads(raw, parse_float=Decimal)
    except (orjson.JSONDecodeError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidCommand("", f"not valid JSON: {exc}") from None


#: The fields that hold decimals; a JSON number with a fraction anywhere else is a wrong type.
DECIMAL_FIELDS = frozenset(
    {"quantity", "amount", "cap", "forecast_basis", "approved_amount", "paid_amount"}
)
TIER_DECIMAL_FIELDS = frozenset({"from", "rate"})


def _exact_json(line: bytes) -> bytes:
    """The same JSON with every number that has a fraction or exponent turned into a string
    holding its exact digits, so that pydantic reads it as a Decimal without a float."""
    value = json.loads(line, parse_float=_ExactNumber, parse_int=_ExactNumber)
    if isinstance(value, dict):
        for name, item in value.items():
            if name == "tiers" and isinstance(item, list):
                for index, tier in enumerate(item):
                    if isinstance(tier, dict):
                        for key, number in tier.items():
                            if isinstance(number, _ExactNumber) and key not in TIER_DECIMAL_FIELDS:
                                raise InvalidCommand(
                                    f"tiers[{index}].{field_name(key)}",
                                    f"expected a string, got {number}",
                                )
                    elif isinstance(tier, _ExactNumber):
                        raise InvalidCommand(f"tiers[{index}]", f"expected an object, got {tier}")
            elif _holds_number(item) and name not in DECIMAL_FIELDS:
                raise InvalidCommand(
                    field_name(name), f"expected a string, got a number {_first(item)}"
                )
    return orjson.dumps(value, default=_exact_default)


def _holds_number(value: Any) -> bool:
    if isinstance(value, _ExactNumber):
        return True
    if isinstance(value, list):
        return any(_holds_number(v) for v in value)
    if isinstance(value, dict):
        return any(_holds_number(v) for v in value.values())
    return False


def _first(value: Any) -> str:
    if isinstance(value, _ExactNumber):
        return str(value)
    items = value if isinstance(value, list) else list(value.values())
    return next(_first(v) for v in items if _holds_number(v))


class _ExactNumber(str):
    """The text of a JSON number with a fraction or exponent, exactly as sent."""


def _exact_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(type(value).__name__)


def parse_line(line: bytes | str) -> Command:
    """Parse and validate one JSON line as a contract command (raises `InvalidCommand`).

    An ordinary `record_sale` line is taken by `plain_sale` (the same rules, checked directly);
    every other line, and every line it is not sure of, by `validated_line`.
    """
    raw = line.encode("utf-8", "surrogatepass") if isinstance(line, str) else line
    sale = plain_sale(raw)
    if sale is not None:
        return sale
    return validated_line(raw)


#: The keys of an ordinary sale line (no `recorded_at`: that line goes through pydantic).
_PLAIN_SALE_KEYS = frozenset(
    {"type", "sale_id", "customer_id", "product_id", "quantity", "amount", "currency",
     "invoice_date"}
)
#: A decimal as `plain_sale` takes it: optional minus, at most 30 digits, optional point and
#: at most 18 digits (within `DIGITS_MAX` and `PLACES_MAX` however they are counted); anything
#: else (`+1`, `1.`, `1e3`, blanks, underscores, more digits) is left to pydantic.
_PLAIN_DECIMAL = re.compile(r"-?[0-9]{1,30}(?:\.[0-9]{1,18})?")
#: Longest line `plain_sale` looks at: three ids of at most 200 characters and the rest fit.
_PLAIN_SALE_BYTES_MAX = 1024
#: Invoice dates read so far (a book has a few hundred distinct days); bounded.
_PLAIN_DAYS: dict[str, date] = {}
_PLAIN_DAYS_MAX = 4096
_set_attr = object.__setattr__
_new = object.__new__


class _SharedFieldsSet(set[str]):
    """The fields set all plain sales share: one set instead of a new set of eight per sale
    (about 700 bytes each: a fifth of a plain sale's cost while a chunk holds its commands).
    A set (pydantic-core's serializer wants one), but it refuses every change; a copy of it
    (pydantic's `model_copy`, `copy`, `deepcopy`) is a plain set of its own."""

    def _shared(self, *_: Any) -> Any:
        raise TypeError("the fields set plain sales share cannot change; copy the command")

    add = discard = remove = pop = clear = update = _shared
    difference_update = intersection_update = symmetric_difference_update = _shared
    __ior__ = __iand__ = __isub__ = __ixor__ = _shared  # type: ignore[assignment]

    def __copy__(self) -> set[str]:
        return set(self)

    def __deepcopy__(self, memo: dict[int, Any]) -> set[str]:
        return set(self)


_PLAIN_SALE_FIELDS_SET = _SharedFieldsSet(_PLAIN_SALE_KEYS)


#: An id as `plain_sale` takes it: 1 to 200 printable ASCII characters (space to `~`) but `"`
#: and `\`: nothing any screen refuses, no escape to read.
_PLAIN_ID = rf'([ !#-\[\]-~]{{1,{ID_LENGTH_MAX}}})'
#: A sale line exactly as `orjson.dumps` (and most feeds) write one: the eight keys in the
#: contract's order, no blanks, every value a string; then only JSON blanks (the line ending).
#: Matched in one pass of C over the decoded line, it stands for the line's JSON decoding, key
#: and type checks (the common case); any other shape goes the general way below.
_CANONICAL_SALE = re.compile(
    rf'\{{"type":"record_sale","sale_id":"{_PLAIN_ID}","customer_id":"{_PLAIN_ID}",'
    rf'"product_id":"{_PLAIN_ID}","quantity":"({_PLAIN_DECIMAL.pattern})",'
    rf'"amount":"({_PLAIN_DECIMAL.pattern})","currency":"([A-Z]{{3}})",'
    r'"invoice_date":"([0-9]{4}-[0-9]{2}-[0-9]{2})"\}[ \t\r\n]*'
)
#: The characters `plain_sale` never takes: `\` (an escape) and DEL, as byte values.
_BACKSLASH, _DEL = ord("\\"), 0x7F


def plain_sale(raw: bytes) -> RecordSale | None:
    """The `RecordSale` of an ordinary sale line, or None: the line goes through
    `validated_line`, which accepts or rejects it (and words every rejection).

    Only what is certain passes here, so that both paths give the same command for every line
    this one accepts (a hypothesis property in tests/unit/test_plain_sale.py): a line of plain
    ASCII without escapes (no screen has anything to find: no NUL, no control, bidirectional
    or invisible character, no BOM, no DEL), exactly the eight keys of a sale without
    `recorded_at`, each once (in the canonical shape, or a line of exactly eight colons: one
    per key), every value a JSON string, ids of 1 to 200 characters, a currency of three
    capitals, decimals as `-?digits[.digits]` within the digit limits, an invoice date
    `YYYY-MM-DD` that exists and is inside the ledger's range. The sign rule is the
    handler's, as on the other path. A line written as `_CANONICAL_SALE` is read by that one
    regular expression (a quarter of pydantic's cost per line); any other is decoded by orjson
    and checked field by field."""
    if len(raw) > _PLAIN_SALE_BYTES_MAX or not raw.isascii():
        return None
    canonical = _CANONICAL_SALE.fullmatch(raw.decode("ascii"))
    if canonical is not None:
        sale_id, customer_id, product_id, quantity, amount, currency, invoice_date = (
            canonical.groups())
    else:
        fields = _plain_sale_fields(raw)
        if fields is None:
            return None
        sale_id, customer_id, product_id, quantity, amount, currency, invoice_date = fields
    day = _PLAIN_DAYS.get(invoice_date)
    if day is None:
        day = _plain_day(invoice_date)
        if day is None:
            return None
    sale = _new(RecordSale)
    _set_attr(sale, "__dict__", {
        "recorded_at": None, "type": "record_sale", "sale_id": sale_id,
        "customer_id": customer_id, "product_id": product_id, "quantity": Decimal(quantity),
        "amount": Decimal(amount), "currency": currency, "invoice_date": day,
    })
    _set_attr(sale, "__pydantic_fields_set__", _PLAIN_SALE_FIELDS_SET)
    _set_attr(sale, "__pydantic_extra__", None)
    _set_attr(sale, "__pydantic_private__", None)
    return sale


def plain_sale_tried(line: bytes | str | None) -> tuple[RecordSale | None, bool]:
    """`plain_sale` of a line of bytes, as a per-line loop takes it before the general parse
    (`Ledger.apply_lines`' chunks, `Intake`'s polls): (the sale, True) when it took the line;
    (None, True) when it read the line and left it, so the caller goes straight on to
    `validated_line` (the rest of `parse_line`) instead of reading it twice; (None, False)
    when it was not tried (a `str` line, no value) or raised: the general parse runs
    `parse_line` and meets the failure again, which rejects that line alone."""
    if type(line) is not bytes:
        return None, False
    try:
        return plain_sale(line), True
    except Exception:
        return None, False


def _plain_sale_fields(raw: bytes) -> tuple[str, str, str, str, str, str, str] | None:
    """`plain_sale`'s checks of a line of ASCII that is not written as `_CANONICAL_SALE` (its
    keys in another order, blanks between them): its seven values as sent, or None."""
    if raw.count(b":") != 8 or _BACKSLASH in raw or _DEL in raw:
        return None
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if type(value) is not dict or value.keys() != _PLAIN_SALE_KEYS or (
            value["type"] != "record_sale"):
        return None
    sale_id = value["sale_id"]
    customer_id = value["customer_id"]
    product_id = value["product_id"]
    quantity = value["quantity"]
    amount = value["amount"]
    currency = value["currency"]
    invoice_date = value["invoice_date"]
    if not (type(sale_id) is str and type(customer_id) is str and type(product_id) is str
            and type(quantity) is str and type(amount) is str and type(currency) is str
            and type(invoice_date) is str):
        return None
    if not (0 < len(sale_id) <= ID_LENGTH_MAX and 0 < len(customer_id) <= ID_LENGTH_MAX
            and 0 < len(product_id) <= ID_LENGTH_MAX and len(currency) == 3
            and currency.isalpha() and currency.isupper()):
        return None
    if _PLAIN_DECIMAL.fullmatch(quantity) is None or _PLAIN_DECIMAL.fullmatch(amount) is None:
        return None
    return sale_id, customer_id, product_id, quantity, amount, currency, invoice_date


def _plain_day(text: str) -> date | None:
    """An invoice date as `Day` reads it, or None (then pydantic says why)."""
    if not _DAY_TEXT.fullmatch(text):
        return None
    try:
        day = date.fromisoformat(text)
    except ValueError:
        return None
    if day_out_of_range(day) is not None:
        return None
    if len(_PLAIN_DAYS) >= _PLAIN_DAYS_MAX:
        _PLAIN_DAYS.clear()
    _PLAIN_DAYS[text] = day
    return day


def validated_line(raw: bytes) -> Command:
    """`parse_line` for every line: screened, then parsed and validated by pydantic-core in
    one step. Lines with fractional JSON numbers first have those numbers turned into exact
    strings, since pydantic would read them through a float."""
    sent = raw
    if line_bytes(raw) > LINE_BYTES_MAX:
        raise InvalidCommand("", TOO_LONG)
    screened = _needs_screen(raw)
    if screened:
        _screen(raw)
    if _JSON_FRACTION.search(raw) is not None:
        try:
            raw = _exact_json(raw)
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
            raise InvalidCommand("", f"not valid JSON: {exc}") from None
        except (TypeError, ValueError, ArithmeticError) as exc:
            raise _unreadable(exc) from None
    try:
        command: Command = _COMMAND.validate_json(raw)
    except ValidationError as exc:
        raise _rejection(exc, raw) from None
    except (TypeError, ValueError, ArithmeticError, RecursionError) as exc:
        # A validator's own failure that pydantic passes through (only ValueError and
        # AssertionError become validation errors): the line is rejected, never the batch.
        raise _unreadable(exc) from None
    if not screened and _may_repeat_a_key(sent, command):
        _screen(sent)  # raises if a key is given twice
    if _may_group_digits(sent, command):
        _refuse_grouped_decimals(sent)
    return command


def _may_group_digits(raw: bytes, command: Command) -> bool:
    """Whether a value of `raw` may hold an underscore (`"1_000"`; an id such as `S_1` too):
    more underscores in the line than in its keys and its type (counted in C). A validator
    on every decimal would cost half the parse of a sale; this costs a few percent."""
    fixed = _FIXED_UNDERSCORES.get(type(command))
    if fixed is not None:  # no optional field but recorded_at (a sale): no set to walk
        expected = fixed + (command.recorded_at is not None)
    else:
        expected = command.kind.count("_") + sum(map(_UNDERSCORES.__getitem__,
                                                     command.model_fields_set))
    return raw.count(b"_") > expected


def _refuse_grouped_decimals(raw: bytes) -> None:
    """A decimal sent as a string is a number as JSON writes one (contract 1: `"12.50"`);
    Python's `Decimal` also reads digit-group underscores (`"1_000"`, PEP 515), which no JSON
    number means: refused naming the field rather than read as 1000."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:  # valid for the standard library only (a lone surrogate)
        value = json.loads(raw)
    if not isinstance(value, dict):
        return
    found = [(field_name(k), v) for k, v in value.items() if k in DECIMAL_FIELDS]
    tiers = value.get("tiers")
    if isinstance(tiers, list):
        found += [(f"tiers[{index}].{k}", v) for index, tier in enumerate(tiers)
                  if isinstance(tier, dict) for k, v in tier.items()
                  if k in TIER_DECIMAL_FIELDS]
    for name, text in found:
        if isinstance(text, str) and "_" in text:
            raise InvalidCommand(
                name, f"{_show(text)} is not a decimal number: write it with the digits 0-9, "
                'an optional point and no group separators (underscores, commas), e.g. '
                '"1000.50"')


def _unreadable(exc: BaseException) -> InvalidCommand:
    return InvalidCommand(
        "", f"the line cannot be read as a command ({type(exc).__name__}: {exc}); fix the line"
    )


def _needs_screen(raw: bytes) -> bool:
    """What sends a line through `_screen`: a NUL byte, a JSON escape (`\u0000`, `\ud800`),
    or any byte outside ASCII. Plain ASCII lines, the bulk of any feed, skip it (three scans
    in C: a third of one regular expression's cost)."""
    return not raw.isascii() or b"\\u" in raw or b"\x00" in raw


_TIER = re.compile(r"tiers\[[0-9]+\]")
#: The end of a JSON object's key: a string's closing quote, then the colon.
_KEY_END = re.compile(rb'"[ \t\r\n]*:')


def _may_repeat_a_key(raw: bytes, command: Command) -> bool:
    """Whether `raw` may hold more keys than `command` has fields: a key given twice (parsers
    keep the last). A valid command holds exactly its fields set, two in each tier; every key
    ends with a colon, so a line with no more colons than that has no key twice (the common
    case, counted in C), and one with no more key ends than that neither."""
    tiers = command.__dict__.get("tiers")  # getattr costs an AttributeError when absent
    expected = len(command.model_fields_set) + 2 * len(tiers or ())
    if raw.count(b":") <= expected:
        return False
    # Colons inside strings (timestamps): bound the key ends by the quotes a colon or a blank
    # follows, still in C, before the regular expression counts them exactly.
    quote_then = (raw.count(b'":') + raw.count(b'" ') + raw.count(b'"\t')
                  + raw.count(b'"\r') + raw.count(b'"\n'))
    if quote_then <= expected:
        return False
    return len(_KEY_END.findall(raw)) > expected


class _Members(list[tuple[str, Any]]):
    """A JSON object's members in the order sent, duplicates kept (`json`'s pairs hook)."""


def field_name(key: str) -> str:
    """A key as a rejection names it: on one line, every control character escaped (a key is
    text from the line), the empty key as `""`."""
    return printable(key) if key else '""'


def _screen(raw: bytes) -> None:
    """Reject text that no store can keep, naming where it is: a NUL byte, bytes that are not
    UTF-8 (raw CESU-8 surrogates among them), a NUL character or a lone surrogate in any key
    or string. A line that is not JSON passes: the parser says why."""
    nul = raw.find(b"\x00")
    if nul >= 0:
        raise InvalidCommand(
            "", f"the line holds a NUL byte (0x00) at byte {nul + 1}, which cannot be stored; "
            "remove it"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidCommand(
            "", f"not valid UTF-8 at byte {exc.start + 1} ({exc.reason}); write the line "
            "in UTF-8 (surrogates encoded on their own, CESU-8, are not UTF-8)"
        ) from None
    try:
        value = json.loads(text, object_pairs_hook=_Members, parse_float=str, parse_int=str,
                           parse_constant=str)
    except (ValueError, RecursionError):
        return
    _screen_value(value, "")


def _screen_value(value: Any, path: str) -> None:
    if isinstance(value, _Members):
        seen: set[str] = set()
        decimals = DECIMAL_FIELDS if not path else TIER_DECIMAL_FIELDS if _TIER.fullmatch(
            path) else frozenset()
        for key, item in value:
            name = f"{path}.{field_name(key)}" if path else field_name(key)
            _screen_text(key, name, "its name")
            if key in seen:
                raise InvalidCommand(
                    name, "is given twice in the line; send each field once (JSON parsers "
                    "disagree on which value wins)"
                )
            seen.add(key)
            if isinstance(item, str):
                _screen_text(item, name, "its value")
            if key in decimals and isinstance(item, str) and not item.isascii():
                raise InvalidCommand(
                    name, f"{_show(item)} is not a decimal written with the digits 0-9"
                )
            _screen_value(item, name)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _screen_value(item, f"{path}[{index}]")
    elif isinstance(value, str):
        _screen_text(value, path, "its value")


def _screen_text(text: str, field: str, where: str) -> None:
    found = unstorable(text)
    if found is not None:
        raise InvalidCommand(
            field, f"{where} holds {found}, which is not text the ledger can store; remove it"
        )


def command_type_of(obj: Any) -> str:
    """The `type` of a decoded command, for reports ("" when there is none)."""
    if isinstance(obj, dict) and isinstance(obj.get("type"), str):
        return str(obj["type"])[:ID_LENGTH_MAX]
    return ""


#: `"type": "record_sale"` in a line that is not JSON (cut short, a stray byte): the
#: rejection still names the command (issue 10); only a contract command's name is taken.
_TYPE_IN_TEXT = re.compile(rb'"type"[ \t\r\n]*:[ \t\r\n]*"([a-z_]{1,40})"')


def command_type_of_line(line: bytes | str) -> str:
    """The command type a line names, for its rejection ("" when it names none)."""
    try:
        return command_type_of(orjson.loads(line))
    except orjson.JSONDecodeError:
        pass
    try:  # orjson refuses lone surrogates; a rejected line still shows its type
        return command_type_of(json.loads(line))
    except (ValueError, RecursionError):
        pass
    raw = line.encode("utf-8", "surrogatepass") if isinstance(line, str) else line
    named = {match.group(1).decode() for match in _TYPE_IN_TEXT.finditer(raw)}
    return named.pop() if len(named) == 1 and named <= set(COMMAND_TYPES) else ""


def parse_command(obj: Any) -> Command:
    """Validate a decoded JSON value (a dict) as one of the contract's commands."""
    if not isinstance(obj, dict):
        raise InvalidCommand("", f"a command is a JSON object, got {type(obj).__name__}")
    try:
        line = orjson.dumps(obj, default=_exact_default)
    except TypeError as exc:  # text orjson cannot encode (a lone surrogate), a foreign type
        raise _unreadable(exc) from None
    return parse_line(line)


_TYPES_TEXT = ", ".join(COMMAND_TYPES)

#: What `amend_agreement` may never change (contract 4): who the agreement is with.
UNAMENDABLE = frozenset({"customer_id", "group_id", "program_id"})


def _rejection(exc: ValidationError, raw: bytes) -> InvalidCommand:
    """The problems pydantic found, each said with the field name and the value."""
    reasons: list[tuple[int, str, str]] = []
    for error in exc.errors(include_url=False):
        kind_of_error = error["type"]
        loc = error["loc"]
        if kind_of_error == "json_invalid":
            message = str(error["msg"]).removeprefix("Invalid JSON: ")
            return InvalidCommand("", f"not valid JSON: {message}")
        if kind_of_error in ("model_type", "dict_type", "model_attributes_type") and not loc:
            return InvalidCommand(
                "", f"a command is a JSON object, got {_json_kind(error.get('input'))}"
            )
        if kind_of_error == "union_tag_not_found":
            return InvalidCommand("type", f"is required; one of {_TYPES_TEXT}")
        if kind_of_error == "union_tag_invalid":
            tag = error.get("ctx", {}).get("tag")
            return InvalidCommand(
                "type", f"unknown command {tag!r}; expected one of {_TYPES_TEXT}"
            )
        kind = str(loc[0]) if loc else ""
        path = _field_path(loc[1:])
        if kind_of_error == "missing":
            text = f"{path}: is required for {kind}"
        elif kind_of_error == "extra_forbidden" and kind == "amend_agreement" and (
            path in UNAMENDABLE
        ):
            text = (f"{path}: an amendment cannot change customer_id, group_id or program_id; "
                    "create a new agreement instead")
        elif kind_of_error == "extra_forbidden":
            # the last part is the key as sent, whatever it holds ("[" included)
            key = field_name(str(loc[-1]))
            path = f"{_field_path(loc[1:-1])}.{key}" if len(loc) > 2 else key
            if len(loc) == 4 and loc[1] == "tiers":
                text = (f"{path}: is not a field of a tier; a tier is "
                        '{"from": ..., "rate": ...}' + (' (write "from", not "threshold")'
                                                       if key == "threshold" else ""))
            else:
                text = f"{path}: is not a field of {kind}"
        elif kind_of_error == "string_pattern_mismatch" and (
            error.get("ctx", {}).get("pattern") == _ID_PATTERN
        ):
            text = f"{path}: {_id_refusal(error.get('input'))}"
        elif kind_of_error.startswith("value_error") or kind_of_error == "assertion_error":
            message = str(error["msg"]).removeprefix("Value error, ")
            text = f"{path}: {message}" if path else message
            if not path:  # a rule over several fields names the field it starts with
                path = _named_field(kind, message)
        else:
            text = f"{path}: {_lower_first(error['msg'])}, got {_show(error.get('input'))}"
        # a tier keyed `threshold` is said first: its missing `from` follows from it
        reasons.append((0 if text.startswith("tiers[") and "not a field of a tier" in text
                        else 1, path, text))
    reasons.sort(key=lambda reason: reason[0])  # stable: otherwise in pydantic's order
    first_field = next((path for _, path, _ in reasons if path), "")
    texts = [text for _, _, text in reasons]
    return InvalidCommand(first_field, texts[0], reason="; ".join(texts[:5]))


def _id_refusal(value: object) -> str:
    """Why an id is refused: the first character it may not hold, and where."""
    text = value if isinstance(value, str) else ""
    found = _ID_REFUSED.search(text)
    char = found.group() if found else ""
    what = ("an invisible character" if char and char in ID_INVISIBLE_CHARS
            else "a bidirectional control character" if char and ord(char) > 0x9F
            else "a control character")
    where = f" (U+{ord(char):04X}) at character {found.start() + 1}" if found else ""
    # shown with what it may not hold escaped: the reason itself must not reorder a terminal
    shown = _ID_REFUSED.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
    shown = f'"{shown}"' if len(shown) <= 80 else f'"{shown[:76]}..."'
    return (f"{shown} holds {what}{where}; an id is plain text without control, "
            "bidirectional or invisible characters: remove it")


def _named_field(kind: str, message: str) -> str:
    model = COMMAND_TYPES.get(kind)
    word = message.split(" ", 1)[0]
    return word if model is not None and word in model.model_fields else ""


def _json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    return "a number"


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def _field_path(loc: tuple[Any, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part.startswith("function-") or "[" in part:
            continue
        else:
            path += f".{field_name(part)}" if path else field_name(part)
    return path


def _show(value: Any) -> str:
    if isinstance(value, Decimal | _ExactNumber):
        return str(value)
    try:
        text = orjson.dumps(value, default=str).decode() if value is not None else "null"
    except TypeError:  # a lone surrogate: json escapes it (\ud800) where orjson refuses
        text = json.dumps(value, default=str)
    return text if len(text) <= 80 else text[:77] + "..."


def utc_now() -> datetime:
    return datetime.now(UTC)
