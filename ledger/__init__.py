"""rebate-ledger: an event-sourced ledger for B2B customer rebates.

`from ledger import Ledger` works as before, but lazily: importing a domain module such as
`ledger.rules` or `ledger.money` loads only the domain, not SQLAlchemy, the event store and the
whole application (issue 8: `import ledger.rules` took half a second)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ledger.core import ApplyReport, Ledger
    from ledger.liability import LiabilityRow

__all__ = ["ApplyReport", "Ledger", "LiabilityRow"]
__version__ = "0.1.0"

_HOMES = {"ApplyReport": "ledger.core", "Ledger": "ledger.core",
          "LiabilityRow": "ledger.liability"}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'ledger' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value
