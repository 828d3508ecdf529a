"""rebate-ledger: an event-sourced ledger for B2B customer rebates."""

from ledger.core import ApplyReport, Ledger
from ledger.liability import LiabilityRow

__all__ = ["ApplyReport", "Ledger", "LiabilityRow"]
__version__ = "0.1.0"
