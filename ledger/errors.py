"""Errors as types. Each says which field or rule was broken, with the offending value."""

from __future__ import annotations


class LedgerError(Exception):
    """Base of the ledger's operating errors (not programmer errors, which are assertions)."""


class Stopped(Exception):  # noqa: N818 -- it is what happened
    """A run stopped part way by a failure that is not the input's (a bug): what was done
    before it stands, the rest was not done. Not a LedgerError: nothing a user sends causes
    it; the CLI exits 3 (`ledger.access.EXIT_CODE`)."""


class Rejection(LedgerError):
    """A command that the ledger refuses; it changes nothing and is kept with its reason."""

    def __init__(self, field: str, message: str, *, reason: str | None = None) -> None:
        text = reason if reason is not None else (f"{field}: {message}" if field else message)
        super().__init__(text)
        self.field = field
        self.message = message

    @property
    def reason(self) -> str:
        return str(self)


class InvalidCommand(Rejection):
    """The command is malformed: unknown, missing or mistyped fields, bad values."""


class RuleViolation(Rejection):
    """The command is well formed but breaks a rule of the contract."""


class UnknownAgreement(RuleViolation):
    def __init__(self, agreement_id: str) -> None:
        super().__init__(
            "agreement_id",
            f"no agreement {agreement_id!r}; create it with create_agreement first",
        )


class UnknownClaim(RuleViolation):
    def __init__(self, claim_id: str) -> None:
        super().__init__(
            "claim_id", f"no claim {claim_id!r}; submit it with submit_claim first"
        )


class UnknownGroup(RuleViolation):
    def __init__(self, group_id: str) -> None:
        super().__init__(
            "group_id", f"no group {group_id!r}; create it with create_group first"
        )


class ClaimStateError(RuleViolation):
    """A claim cannot make that move: submitted → approved → settled, or submitted → rejected."""


class InputUnreadable(LedgerError):
    """The input as a whole cannot be read (missing file, permission, not a file)."""


class StoreReadOnly(LedgerError):
    """The store cannot be written (a file without write permission, an immutable file, a
    read-only database user); reading commands still answer."""


class ConfigurationError(LedgerError):
    """A setting that cannot be used, named with what to do."""


class StoreDamaged(LedgerError):
    """The store was changed behind the ledger (a table dropped, the hash chain emptied):
    the ledger refuses to write or answer from it rather than repair it silently; the
    message names what is wrong and the explicit command that rebuilds it."""


class CoreTablesMissing(StoreDamaged):
    """Read tables of a store that holds events are gone (dropped behind the ledger's back):
    recreated empty they would answer with figures that lack those events (accrued 0,
    liabilities negative), so the ledger refuses until they are rebuilt from the events."""

    def __init__(self, missing: list[str]) -> None:
        self.missing = tuple(missing)
        super().__init__(
            f"the store's read table{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
            f"{'are' if len(missing) > 1 else 'is'} missing, though it holds events (dropped "
            "behind the ledger, or made by an older version): not recreated empty, which would "
            "answer with figures that lack those events. Re-derive the read tables from the "
            "stored events with `rebate-ledger rebuild-tables --yes` (`rebate-ledger verify` "
            "names what is missing)"
        )
