"""Who may do what: the roles, the principal a request or a CLI run acts as, the errors of the
application service, and the one place each where those errors become an HTTP status and a CLI
exit code.

The matrix in docs/security.md is this module said in words; tests/api/test_roles.py checks
every endpoint for every role against `ROUTE_ROLES` below.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from ledger.errors import (
    ConfigurationError,
    InputUnreadable,
    LedgerError,
    Rejection,
    Stopped,
    StoreDamaged,
)


class Role(StrEnum):
    admin = "admin"
    finance = "finance"
    commercial = "commercial"
    sales = "sales"
    customer = "customer"
    auditor = "auditor"
    ingest = "ingest"


#: Roles that see every customer; `sales` and `customer` see only the customers they are given.
ALL_CUSTOMERS = frozenset({Role.admin, Role.finance, Role.commercial, Role.auditor})
SCOPED = frozenset({Role.sales, Role.customer})


@dataclass(frozen=True)
class Principal:
    """Whom a use case runs for: a user of the API, or the operator of the CLI."""

    name: str
    role: Role
    customers: frozenset[str] = field(default_factory=frozenset)

    @property
    def actor(self) -> str:
        """How the ledger records this principal on what it stores."""
        return self.name

    def sees_customer(self, customer_id: str | None) -> bool:
        if self.role in ALL_CUSTOMERS:
            return True
        if self.role in SCOPED:
            return customer_id is not None and customer_id in self.customers
        return False


def operator(name: str) -> Principal:
    """The CLI's principal: whoever holds the database holds every right (`cli:<OS user>`)."""
    return Principal(name=name, role=Role.admin)


# Commands by role -------------------------------------------------------------------------

#: Deal design (contract v1 and v2). Names not yet in `ledger.commands.COMMAND_TYPES` (being
#: added for contract v2) are listed so that they work once merged.
DEAL_COMMANDS = frozenset({
    "create_agreement", "amend_agreement", "revise_forecast",
    "create_group", "join_group", "leave_group",
})
MONEY_COMMANDS = frozenset({
    "approve_claim", "reject_claim", "settle_claim", "write_off", "reverse_write_off",
})
INGEST_COMMANDS = frozenset({"record_sale", "reverse_sale"})
CUSTOMER_COMMANDS = frozenset({"submit_claim"})


def all_command_types() -> frozenset[str]:
    """Every command type the ledger takes, from the command registry (so that a command added
    there is an admin's at once) and the names above."""
    from ledger.commands import COMMAND_TYPES

    return frozenset(COMMAND_TYPES) | DEAL_COMMANDS | MONEY_COMMANDS | INGEST_COMMANDS \
        | CUSTOMER_COMMANDS


COMMANDS_BY_ROLE: dict[Role, frozenset[str]] = {
    Role.admin: all_command_types(),
    Role.finance: MONEY_COMMANDS,
    Role.commercial: DEAL_COMMANDS,
    Role.sales: frozenset(),
    Role.customer: CUSTOMER_COMMANDS,
    Role.auditor: frozenset(),
    Role.ingest: INGEST_COMMANDS,
}

#: Commands that the API turns into proposals (four eyes); `LEDGER_API_PROPOSAL_COMMANDS`.
DEFAULT_PROPOSAL_COMMANDS = frozenset({"create_agreement", "amend_agreement", "write_off"})

#: Who may approve or reject a proposal (never its own proposer).
APPROVERS = frozenset({Role.finance, Role.admin})


class Capability(StrEnum):
    """What a route needs besides a valid token."""

    read = "read"  # liability, agreements, explain, opportunities: scoped for sales/customer
    read_books = "read_books"  # every other read of the toolkit: whole-book views
    verify = "verify"  # verify, evidence
    proposals = "proposals"  # list and read proposals
    approve = "approve"  # approve or reject a proposal
    close = "close"  # close a period
    users = "users"  # manage users


ROLES_BY_CAPABILITY: dict[Capability, frozenset[Role]] = {
    Capability.read: frozenset(Role) - {Role.ingest},
    Capability.read_books: frozenset({Role.admin, Role.finance, Role.commercial, Role.auditor}),
    Capability.verify: frozenset({Role.admin, Role.finance, Role.commercial, Role.auditor}),
    Capability.proposals: frozenset({Role.admin, Role.finance, Role.commercial, Role.auditor}),
    Capability.approve: APPROVERS,
    Capability.close: frozenset({Role.admin, Role.finance}),
    Capability.users: frozenset({Role.admin}),
}


def may(principal: Principal, capability: Capability) -> bool:
    return principal.role in ROLES_BY_CAPABILITY[capability]


# Errors of the application service ----------------------------------------------------------


class AccessError(LedgerError):
    """Base of the refusals that are about who asks, not about what is asked."""


class Unauthenticated(AccessError):
    """No credentials, or a token or password that matches no active user."""


class Forbidden(AccessError):
    """The principal's role may not do this (names the role and what it tried)."""


class NotFound(LedgerError):
    """No such resource, or one the principal may not see (the two are not told apart)."""


class Conflict(LedgerError):
    """The request contradicts the state: a proposal already decided, an idempotency key
    reused with another request, a user that exists."""


class TooLarge(LedgerError):
    """The request is above a configured limit (body bytes, lines)."""


class RateLimited(AccessError):
    """Too many failed sign-ins from one client address."""


class UnsupportedMedia(LedgerError):
    """A request body of a media type the endpoint does not take (names the ones it does)."""


class BadRequest(LedgerError):
    """A parameter of the request (not a command) that cannot be used; names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field


#: The one mapping of errors to HTTP statuses; the first matching class wins.
HTTP_STATUS: tuple[tuple[type[Exception], int], ...] = (
    (Unauthenticated, 401),
    (Forbidden, 403),
    (NotFound, 404),
    (Conflict, 409),
    (TooLarge, 413),
    (UnsupportedMedia, 415),
    (RateLimited, 429),
    (BadRequest, 422),
    (Rejection, 422),
    (InputUnreadable, 400),
    (ConfigurationError, 503),
    (StoreDamaged, 503),  # the store refuses until an operator restores or rebuilds it
    (LedgerError, 400),
)

#: The one mapping of errors to CLI exit codes; the first matching class wins. Every command
#: lets its errors rise to it (`ledger.cli.errors`); the command's own outcome (apply with
#: rejected lines, a check that failed: 1) is its result, not an error. The contract (section
#: 3) fixes apply's: 0 all applied, 1 some rejected, 2 the input cannot be read.
EXIT_CODE: tuple[tuple[type[Exception], int], ...] = (
    (Stopped, 3),  # stopped part way by an internal error (a bug): what came before stands
    (Rejection, 1),  # refused by a rule of the ledger (a closed period, a claim's state)
    (Conflict, 1),  # contradicts the state: a user that exists, a proposal decided already
    # 2, the request cannot be used as given: input that cannot be read, an option or id
    # that names nothing (NotFound, an unknown --agreement), a store that cannot be opened,
    # is read-only or damaged, a setting that cannot be used, a role that may not
    (LedgerError, 2),
)


def http_status(error: Exception) -> int:
    for kind, status in HTTP_STATUS:
        if isinstance(error, kind):
            return status
    return 500


def exit_code(error: Exception) -> int:
    for kind, code in EXIT_CODE:
        if isinstance(error, kind):
            return code
    return 2
