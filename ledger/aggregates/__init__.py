"""Event-sourced aggregates: agreements, claims, and batches of sales."""

from ledger.aggregates.agreement import Agreement, agreement_uuid
from ledger.aggregates.claim import Claim, claim_uuid
from ledger.aggregates.group import Group, group_uuid
from ledger.aggregates.sales import SalesBatch

__all__ = [
    "Agreement", "Claim", "Group", "SalesBatch", "agreement_uuid", "claim_uuid", "group_uuid",
]
