"""The contract's ten commands (section 1) as pydantic models, and how a JSON line becomes one.

A line is decoded with orjson; when it holds a JSON number with a fraction or exponent it is
decoded again with the standard library reading numbers as `Decimal`, so that no value ever
passes through a binary float. Every problem becomes an `InvalidCommand` naming the field and
the offending value.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any, ClassVar, Literal

import orjson
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

from ledger.errors import InvalidCommand
from ledger.money import DecimalFormatError, parse_decimal
from ledger.rules import Tier

#: Upper bounds on what a command may hold ("put a limit on everything").
ID_LENGTH_MAX = 200
TEXT_LENGTH_MAX = 2000
TIERS_MAX = 100
PRODUCTS_MAX = 10_000
LINE_BYTES_MAX = 1 << 20

_DATE_TEXT = re.compile(r"\d{4}-\d{2}-\d{2}")
_TIMESTAMP_TEXT = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:?\d{2})")


def _decimal(value: object) -> Decimal:
    try:
        return parse_decimal(value)
    except DecimalFormatError as exc:
        raise ValueError(str(exc)) from exc


def _date(value: object) -> date:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _DATE_TEXT.fullmatch(value):
        raise ValueError(f"expected a date YYYY-MM-DD, got {value!r}")
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise ValueError(f"not a calendar date: {value!r}") from exc


def parse_timestamp(value: object) -> datetime:
    """An ISO 8601 timestamp with an offset, as an aware UTC datetime."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"timestamp {value!r} has no offset; add Z or +HH:MM")
        return value.astimezone(UTC)
    if not isinstance(value, str) or not _TIMESTAMP_TEXT.fullmatch(value):
        raise ValueError(
            f"expected an ISO 8601 timestamp with an offset such as 2025-04-02T09:00:00Z, "
            f"got {value!r}"
        )
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ValueError(f"not a valid timestamp: {value!r}") from exc
    assert parsed.tzinfo is not None
    return parsed.astimezone(UTC)


def _strict_str(value: object) -> object:
    if not isinstance(value, str):
        raise ValueError(f"expected a JSON string, got {value!r}")
    return value


Dec = Annotated[Decimal, BeforeValidator(_decimal)]
Day = Annotated[date, BeforeValidator(_date)]
Timestamp = Annotated[datetime, BeforeValidator(parse_timestamp)]
Id = Annotated[
    str, BeforeValidator(_strict_str), StringConstraints(min_length=1, max_length=ID_LENGTH_MAX)
]
Text = Annotated[
    str, BeforeValidator(_strict_str), StringConstraints(min_length=1, max_length=TEXT_LENGTH_MAX)
]
Currency = Annotated[str, BeforeValidator(_strict_str), StringConstraints(pattern=r"^[A-Z]{3}$")]
Positive = Annotated[Dec, Field(gt=0)]
Basis = Literal["quantity", "amount"]
RateKind = Literal["per_unit", "percent"]
TierMethod = Literal["retroactive", "incremental"]
AccrualMethod = Literal["earned", "forecast"]


class TierIn(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    threshold: Dec = Field(alias="from", ge=0)
    rate: Dec = Field(ge=0)

    def to_tier(self) -> Tier:
        return Tier(threshold=self.threshold, rate=self.rate)


def _check_tier_order(tiers: list[TierIn] | None) -> None:
    if tiers is None:
        return
    for index in range(1, len(tiers)):
        if tiers[index].threshold <= tiers[index - 1].threshold:
            raise ValueError(
                f"tiers[{index}].from must be greater than tiers[{index - 1}].from "
                f"(tiers strictly increasing), got {tiers[index].threshold} after "
                f"{tiers[index - 1].threshold}"
            )


Tiers = Annotated[list[TierIn], Field(min_length=1, max_length=TIERS_MAX)]
Products = Annotated[list[Id], Field(min_length=1, max_length=PRODUCTS_MAX)]


class Command(BaseModel):
    """Fields every command may carry."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: ClassVar[str]
    recorded_at: Timestamp | None = None


class CreateAgreement(Command):
    kind: ClassVar[str] = "create_agreement"
    type: Literal["create_agreement"]
    agreement_id: Id
    customer_id: Id
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
    def _tiers_increase(self) -> CreateAgreement:
        _check_tier_order(self.tiers)
        return self


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
        _check_tier_order(self.tiers)
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

    @model_validator(mode="after")
    def _same_sign(self) -> RecordSale:
        if (self.quantity > 0 and self.amount < 0) or (self.quantity < 0 and self.amount > 0):
            raise ValueError(
                f"quantity ({self.quantity}) and amount ({self.amount}) must carry the same "
                "sign; a return or credit note has both negative"
            )
        return self


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
    kind: ClassVar[str] = "write_off"
    type: Literal["write_off"]
    agreement_id: Id
    amount: Positive
    effective_date: Day
    reason: Text


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
    )
}


def decode_line(line: bytes | str) -> Any:
    """Decode one JSON line; numbers with a fraction or exponent become `Decimal`."""
    if len(line) > LINE_BYTES_MAX:
        raise InvalidCommand("", f"line is longer than {LINE_BYTES_MAX} bytes")
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise InvalidCommand("", f"not valid JSON: {exc}") from None
    if _has_float(value):
        text = line.decode("utf-8") if isinstance(line, bytes) else line
        value = json.loads(text, parse_float=Decimal)
    return value


def _has_float(value: Any) -> bool:
    if isinstance(value, float):
        return True
    if isinstance(value, dict):
        return any(_has_float(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_float(v) for v in value)
    return False


def command_type_of(obj: Any) -> str:
    """The `type` of a decoded command, for reports ("" when there is none)."""
    if isinstance(obj, dict) and isinstance(obj.get("type"), str):
        return obj["type"][:ID_LENGTH_MAX]
    return ""


def parse_command(obj: Any) -> Command:
    """Validate a decoded JSON value as one of the contract's commands."""
    if not isinstance(obj, dict):
        raise InvalidCommand("", f"a command is a JSON object, got {type(obj).__name__}")
    kind = obj.get("type")
    if kind is None:
        raise InvalidCommand("type", f"is required; one of {', '.join(COMMAND_TYPES)}")
    model = COMMAND_TYPES.get(kind) if isinstance(kind, str) else None
    if model is None:
        raise InvalidCommand(
            "type", f"unknown command {kind!r}; expected one of {', '.join(COMMAND_TYPES)}"
        )
    try:
        return model.model_validate(obj)
    except ValidationError as exc:
        raise _rejection(kind, exc) from None


def _rejection(kind: str, exc: ValidationError) -> InvalidCommand:
    """The first problem pydantic found, said with the field name and the value."""
    reasons = []
    first_field = ""
    for error in exc.errors(include_url=False):
        loc = _field_path(error["loc"])
        kind_of_error = error["type"]
        if kind_of_error == "missing":
            text = f"{loc}: is required for {kind}"
        elif kind_of_error == "extra_forbidden":
            text = f"{loc}: is not a field of {kind}"
        elif kind_of_error == "literal_error":
            text = f"{loc}: {_lower_first(error['msg'])}, got {error['input']!r}"
        elif kind_of_error.startswith("value_error"):
            message = str(error["msg"]).removeprefix("Value error, ")
            text = f"{loc}: {message}" if loc else message
        else:
            text = f"{loc}: {_lower_first(error['msg'])}, got {_show(error.get('input'))}"
        if not first_field:
            first_field = loc
        reasons.append(text)
    return InvalidCommand(first_field, reasons[0], reason="; ".join(reasons[:5]))


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def _field_path(loc: tuple[Any, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part.startswith("function-") or part in {"list[TierIn]", "list[str]"}:
            continue
        else:
            path += f".{part}" if path else str(part)
    return path


def _show(value: Any) -> str:
    if isinstance(value, Decimal):
        return f"{value}"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def utc_now() -> datetime:
    return datetime.now(UTC)
