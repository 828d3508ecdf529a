"""Immutable, versioned event types of the ledger and their encoding."""

from ledger.events.agreement import (
    AgreementAmended,
    AgreementCreated,
    ForecastRevised,
    RebateWrittenOff,
    TierTerm,
    WriteOffReversed,
)
from ledger.events.base import LedgerCreated, LedgerEvent
from ledger.events.claims import ClaimApproved, ClaimRejected, ClaimSettled, ClaimSubmitted
from ledger.events.group import GroupCreated, MemberJoined, MemberLeft
from ledger.events.period import PeriodClosed, ReportedRow
from ledger.events.sales import (
    ReversalColumns,
    SaleColumns,
    SaleLine,
    SaleReversal,
    SalesRecorded,
)

ALL_EVENT_TYPES: tuple[type[LedgerEvent], ...] = (
    AgreementCreated,
    AgreementAmended,
    ForecastRevised,
    RebateWrittenOff,
    ClaimSubmitted,
    ClaimApproved,
    ClaimRejected,
    ClaimSettled,
    SalesRecorded,
    PeriodClosed,
    WriteOffReversed,
    GroupCreated,
    MemberJoined,
    MemberLeft,
)

__all__ = [
    "ALL_EVENT_TYPES",
    "AgreementAmended",
    "AgreementCreated",
    "ClaimApproved",
    "ClaimRejected",
    "ClaimSettled",
    "ClaimSubmitted",
    "ForecastRevised",
    "GroupCreated",
    "MemberJoined",
    "MemberLeft",
    "WriteOffReversed",
    "PeriodClosed",
    "ReportedRow",
    "LedgerCreated",
    "LedgerEvent",
    "RebateWrittenOff",
    "ReversalColumns",
    "SaleColumns",
    "SaleLine",
    "SaleReversal",
    "SalesRecorded",
    "TierTerm",
]
