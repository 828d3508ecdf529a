"""The application service: one method per use case, each run for a `Principal`.

Every entrypoint (the HTTP API, and the CLI commands that act for a user) calls only this: it
checks what the principal may do and see, calls the `Ledger` facade and the audit functions,
and records who did what. No entrypoint holds a rule, a query or SQL; errors are the types of
`ledger.access`, which each entrypoint maps to a status or an exit code in one place.

Four eyes: a command whose type is in `proposal_commands` (default `create_agreement`,
`amend_agreement`, `write_off`) sent through the service becomes a *proposal*: checked against
the rules and stored with its what-if (the affected agreement's liability before and after,
computed by applying it in a transaction that is then rolled back), not in force until a
different finance or admin user approves it. It is then applied at the approval time, recorded
as the proposer's, approved by the approver.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import orjson
from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from ledger import accounts
from ledger import commands as c
from ledger.access import (
    COMMANDS_BY_ROLE,
    DEFAULT_PROPOSAL_COMMANDS,
    BadRequest,
    Capability,
    Conflict,
    Forbidden,
    NotFound,
    Principal,
    Role,
    TooLarge,
    all_command_types,
    may,
)
from ledger.accounts import api_idempotency, api_proposals
from ledger.answers import AnswerCache
from ledger.audit.chain import events_table
from ledger.core import (
    ApplyReport,
    ApplyStopped,
    Ledger,
    SourcedCommand,
    parse_applied_line,
)
from ledger.errors import (
    ConfigurationError,
    InputUnreadable,
    InvalidCommand,
    LedgerError,
    Rejection,
    StoreDamaged,
    UnknownAgreement,
)
from ledger.handlers import RejectionRecord
from ledger.importing import MappedRow
from ledger.liability import LiabilityRow, liability_rows
from ledger.money import EXACT
from ledger.projections.core import agreements, from_us, ledger_state, terms_changes
from ledger.projections.read_models import ClaimRow
from ledger.store import refusing_read_only

if TYPE_CHECKING:
    from ledger.audit.output import Report
    from ledger.kafka.settings import KafkaSettings
    from ledger.workers import (
        AuditViewWorker,
        IntakeWorker,
        PipelineWorker,
        ProjectionWorker,
        RelayWorker,
        ReplayWorker,
    )

#: Most command lines one API request may carry (one transaction; `Ledger.apply_records` bound;
#: a dry run of `apply` or `import` has no bound).
REQUEST_LINES_MAX = 100_000
#: Most proposals one request may carry (each is checked in a transaction of its own).
REQUEST_PROPOSALS_MAX = 100
#: An event id as the tools print it: `<aggregate uuid>/<version>`.
EVENT_ID = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/[0-9]+")
#: Most events one read of the event log returns.
EVENT_PAGE_MAX = 10_000


def parse_day(value: str, name: str) -> date:
    try:
        return date.fromisoformat(value.strip())
    except (ValueError, AttributeError):
        raise BadRequest(name, f"{value!r} is not a date YYYY-MM-DD") from None


def parse_moment(value: str | None, name: str) -> datetime | None:
    """An ISO 8601 timestamp (UTC when it has no offset), or a date meaning the end of that
    day, UTC: the same reading as the CLI's `--known-at`."""
    if value is None:
        return None
    text = value.strip()
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), time.max, tzinfo=UTC)
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise BadRequest(name, f"{value!r} is not a date (YYYY-MM-DD) or ISO 8601 timestamp "
                         "(2025-04-02T09:00:00Z)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def timestamp_text(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


#: The reports `LedgerService.workbook` writes as Excel workbooks (the CLI's `--format xlsx`).
WORKBOOKS = ("liability", "reconcile", "journal", "trial-balance", "explain", "diff",
             "opportunities")


@dataclass
class Outcome:
    """What a write use case answers: a status class (ok, accepted for approval, rejected) and
    the JSON document."""

    status: int
    body: dict[str, Any]


@dataclass
class _Proposal:
    number: int
    proposal_id: str
    command: c.Command
    text: bytes
    what_if: dict[str, Any]


class _NotKept(Exception):
    """A liability answer asked from kept answers only would have to be computed."""


def _liability_document(rows: Sequence[LiabilityRow], as_of: date, known_at: datetime | None,
                        answered_at: datetime) -> dict[str, Any]:
    """What `liability --format json` prints."""
    return {
        "as_of": as_of.isoformat(),
        "known_at": timestamp_text(known_at if known_at is not None else answered_at),
        "rows": [row.to_dict() for row in rows],
    }


class _RolledBack(Exception):
    """Raised inside a what-if transaction so that nothing of it is committed."""


@dataclass
class LedgerService:
    """The use cases of the ledger, for principals. Built once per process (ledger.bootstrap)."""

    ledger: Ledger
    proposal_commands: frozenset[str] = DEFAULT_PROPOSAL_COMMANDS
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    #: liability answers by store position (ledger.answers), shared by this process's callers
    answers: AnswerCache = field(default_factory=AnswerCache, repr=False)
    _position_query: Any = field(default=None, repr=False)
    _stamp_query: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        accounts.create_tables(self.ledger.engine)

    @property
    def engine(self) -> Any:
        return self.ledger.engine

    @property
    def database_url(self) -> str:
        """The store's URL (an output file must never be one of its files)."""
        return self.ledger.database_url

    def now(self) -> datetime:
        """The ledger's clock (a report's default date is today by it)."""
        return self.ledger.clock()

    def close(self) -> None:
        self.ledger.close()

    def __enter__(self) -> LedgerService:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # Access ------------------------------------------------------------------------------

    def authenticate(self, token: str) -> Principal:
        return accounts.principal_for_token(self.engine, token)

    def sign_in(self, name: str, password: str) -> Principal:
        return accounts.principal_for_password(self.engine, name, password)

    def start_session(self, name: str, session_id: str, max_age_s: int) -> None:
        """Record a web session of `name` just signed in (by the hash of its id), open for
        `max_age_s`: signing out, `users revoke` and `users rotate` end it on the server."""
        with refusing_read_only(self.engine, "signing in (a web session is stored)"):
            accounts.start_session(self.engine, name, session_id, max_age_s)

    def resume(self, name: str, session_id: str) -> Principal:
        """The principal of the web session `session_id` of `name`, while it is open on the
        server and the user active; `Unauthenticated` once it has ended."""
        return accounts.principal_for_session(self.engine, name, session_id)

    def end_session(self, session_id: str) -> None:
        """Sign-out: the web session ends on the server."""
        with refusing_read_only(self.engine, "signing out (a web session is ended)"):
            accounts.end_session(self.engine, session_id)

    @staticmethod
    def require(principal: Principal, capability: Capability, what: str) -> None:
        if not may(principal, capability):
            raise Forbidden(f"role {principal.role.value} may not {what}")

    def ready(self) -> dict[str, Any]:
        """The store answers (for /readyz)."""
        try:
            position = self._position_now()
        except SQLAlchemyError as error:
            raise ConfigurationError(f"the store does not answer: {type(error).__name__}") \
                from None
        return {"store": "ok", "position": position}

    def _position_now(self, session: Session | None = None) -> int:
        query = self._position_query
        if query is None:  # built once: building it cost twice the indexed max(id) itself
            query = self._position_query = select(
                func.max(events_table(self.ledger.app.recorder).c.id))
        if session is not None:
            return int(session.execute(query).scalar() or 0)
        with self.engine.connect() as connection:
            return int(connection.execute(query).scalar() or 0)

    def _answers_stamp(self) -> tuple[int, int]:
        """What a kept answer holds for (ledger.answers): the store position and the count in
        `ledger_state.writes`, which `rebuild-tables` raises when it replaces the read tables
        without storing an event. One round trip."""
        query = self._stamp_query
        if query is None:
            query = self._stamp_query = select(
                func.max(events_table(self.ledger.app.recorder).c.id),
                select(ledger_state.c.writes).where(ledger_state.c.id == 1).scalar_subquery())
        with self.engine.connect() as connection:
            position, writes = connection.execute(query).one()
        return int(position or 0), int(writes or 0)

    # Users -------------------------------------------------------------------------------

    def add_user(self, principal: Principal, name: str, role: Role,
                 customers: Sequence[str] = (), password: str | None = None) -> str:
        self.require(principal, Capability.users, "manage users")
        return accounts.add_user(self.engine, name, role, customers, password)

    def users(self, principal: Principal) -> list[accounts.User]:
        self.require(principal, Capability.users, "manage users")
        return accounts.list_users(self.engine)

    def revoke_user(self, principal: Principal, name: str) -> None:
        self.require(principal, Capability.users, "manage users")
        accounts.revoke_user(self.engine, name)

    def rotate_token(self, principal: Principal, name: str) -> str:
        self.require(principal, Capability.users, "manage users")
        return accounts.rotate_token(self.engine, name)

    # Commands ----------------------------------------------------------------------------

    def submit(self, principal: Principal, lines: Sequence[bytes], *,
               idempotency_key: str | None = None) -> Outcome:
        """Apply a batch of command lines for `principal`, as `apply` does; deal changes become
        proposals. With `idempotency_key` a retry answers the first outcome again, applying
        nothing twice (the key is stored in the transaction that applies the batch)."""
        numbered = [(n, line) for n, line in enumerate(lines, 1) if line.strip()]
        if len(numbered) > REQUEST_LINES_MAX:
            raise TooLarge(f"{len(numbered)} command lines; at most {REQUEST_LINES_MAX} a "
                           "request (send the rest in further requests)")
        request_hash = hashlib.sha256(b"\n".join(lines)).hexdigest()
        if idempotency_key is not None:
            if not (0 < len(idempotency_key) <= 200):
                raise BadRequest("Idempotency-Key", "1 to 200 characters")
            kept = self._kept_outcome(principal, idempotency_key, request_hash)
            if kept is not None:
                return kept
        if not numbered:
            raise BadRequest("body", "no command: send one JSON object, or JSON Lines")
        parsed = [(number, line, *_parse(line)) for number, line in numbered]
        self._check_types(principal, parsed)
        source = f"api:{principal.name}"
        records: list[SourcedCommand] = []
        proposals: list[_Proposal] = []
        for number, line, command, problem in parsed:
            if command is not None and (hidden := self._out_of_scope(principal, command)):
                command, problem = None, hidden
            if command is not None and command.kind in self.proposal_commands:
                if len(proposals) >= REQUEST_PROPOSALS_MAX:
                    raise TooLarge(f"more than {REQUEST_PROPOSALS_MAX} proposals in one "
                                   "request")
                text = _without_recorded_at(line)
                command = c.parse_line(text)
                verdict = self._what_if(command, text)
                if isinstance(verdict, Rejection):
                    problem, command = verdict, None
                else:
                    proposals.append(_Proposal(number, str(uuid.uuid4()), command, text,
                                               verdict))
                    continue
            records.append(SourcedCommand(number, _kept(line), command, problem, source))

        def extras(session: Session) -> None:
            moment = accounts.now_us()
            for proposal in proposals:
                session.execute(insert(api_proposals).values(
                    proposal_id=proposal.proposal_id, command_type=proposal.command.kind,
                    agreement_id=getattr(proposal.command, "agreement_id", None),
                    customer_id=self._customer_of(session, proposal.command),
                    command=proposal.text.decode(), proposer=principal.name,
                    proposer_role=principal.role.value, proposed_us=moment,
                    what_if=orjson.dumps(proposal.what_if).decode(), status="pending"))
            if idempotency_key is not None:
                session.execute(insert(api_idempotency).values(
                    user_name=principal.name, key=idempotency_key,
                    request_sha256=request_hash, created_us=moment))

        try:
            report = self._apply(principal, records, extras)
        except IntegrityError:
            if idempotency_key is None:
                raise
            # the same key committed by a concurrent request first: answer as it did
            kept = self._kept_outcome(principal, idempotency_key, request_hash)
            if kept is None:
                raise
            return kept
        body = report.to_dict()
        body["proposals"] = [
            {"line": p.number, "command": p.command.kind, "proposal_id": p.proposal_id}
            for p in proposals
        ]
        if len(proposals) == 1:
            body["proposal_id"] = proposals[0].proposal_id
        status = 422 if report.rejected else 202 if proposals else 200
        outcome = Outcome(status, body)
        if idempotency_key is not None:
            with self.engine.begin() as connection:
                connection.execute(update(api_idempotency).where(
                    api_idempotency.c.user_name == principal.name,
                    api_idempotency.c.key == idempotency_key,
                ).values(status=status, body=orjson.dumps(body).decode()))
        return outcome

    def load(self, principal: Principal, lines: Iterable[bytes | str], *, source: str,
             on_progress: Callable[[int], None] | None = None,
             dry_run: bool = False) -> ApplyReport:
        """`apply` from the command line: an operator loads history directly (no proposals),
        through `Ledger.apply_lines` (chunks, a bad line rejected alone, `ApplyStopped` on an
        internal error), recording `principal` as the actor in each chunk's transaction.

        `dry_run` (`apply --dry-run`): the report is what the load would do against the store
        as it stands, and nothing is stored: the lines are parsed as `apply_lines` parses them
        and go the dry-run path of `import_rows` (a SQLite store: applied for real into a copy
        that is deleted; PostgreSQL: chunk by chunk in one transaction rolled back; any size
        either way). `on_progress` gets the bytes of the lines read."""
        if dry_run:
            return self.import_rows(principal, _numbered_rows(lines, on_progress),
                                    source=source, dry_run=True)
        start: list[int] = []

        def skip_applied(session: Session) -> set[int]:
            start.append(self._position_now(session))
            return set()

        def before_commit(session: Session, rejected: list[RejectionRecord]) -> None:
            accounts.record_actor(session, start[-1] + 1, self._position_now(session),
                                  principal)

        with self._lock:  # one writer per process: the store serialises processes
            return self.ledger.apply_lines(lines, source=source, on_progress=on_progress,
                                           hooks=(skip_applied, before_commit))

    def import_rows(self, principal: Principal, rows: Iterable[MappedRow], *, source: str,
                    dry_run: bool = False,
                    on_chunk: Callable[[], None] | None = None) -> ApplyReport:
        """`import` (ledger.importing): commands mapped from a CSV file or a workbook, each a
        `MappedRow` (row number, kept text, command or why it is rejected), applied as `load`
        applies lines: in chunks of `chunk_lines`, one transaction each, every rejection kept
        with its row number. `dry_run`: the report is what the import would do and nothing is
        stored, at any size: on SQLite the import runs into a copy of the store that is then
        deleted; on PostgreSQL its chunks run in one transaction (`Ledger.dry_run`) that is
        rolled back, in the memory of one chunk."""
        if dry_run and self._sqlite_file() is not None:
            return self._import_into_copy(principal, rows, source=source, on_chunk=on_chunk)
        chunk_max = self.ledger.settings.chunk_lines
        report = ApplyReport()
        start: list[int] = []

        def skip_applied(session: Session) -> set[int]:
            start.append(self._position_now(session))
            return set()

        def before_commit(session: Session, rejected: list[RejectionRecord]) -> None:
            accounts.record_actor(session, start[-1] + 1, self._position_now(session),
                                  principal)

        def apply(records: list[SourcedCommand]) -> None:
            try:
                done = self.ledger.apply_records(
                    records, skip_applied=None if dry_run else skip_applied,
                    before_commit=None if dry_run else before_commit)
            except LedgerError:  # the store refuses (read-only, cannot be opened): as apply
                raise
            except Exception as exc:
                raise ApplyStopped(report, records[0].number, exc) from exc
            report.accepted += done.accepted
            report.duplicates.extend(done.duplicates)
            report.rejected.extend(done.rejected)
            report.by_type.update(done.by_type)
            if on_chunk is not None:
                on_chunk()

        records: list[SourcedCommand] = []
        # a dry run on PostgreSQL: every chunk inside one transaction rolled back at the end,
        # so a later chunk sees the earlier ones and nothing is stored, at any size
        preview = self.ledger.dry_run() if dry_run else contextlib.nullcontext()
        with self._lock, preview:  # one writer per process: the store serialises processes
            try:
                for row in rows:
                    if len(records) >= chunk_max:
                        apply(records)
                        records = []
                    records.append(SourcedCommand(row.number, row.text, row.command,
                                                  row.problem, source))
            except InputUnreadable as exc:  # the file broke off: what was read applies
                stopped_at = records[-1].number + 1 if records else 1
                if records:
                    apply(records)
                raise ApplyStopped(report, stopped_at, exc) from exc
            if records:
                apply(records)
        return report

    def importable(self, principal: Principal) -> frozenset[str]:
        """The command types `principal` may import from a file (`import_file`): those its
        role may send, less those that need a second person's approval (proposals are made
        one at a time, each with its what-if, in the proposals inbox)."""
        return COMMANDS_BY_ROLE.get(principal.role, frozenset()) - self.proposal_commands

    def import_file(self, principal: Principal, kinds: Iterable[str],
                    rows: Iterable[MappedRow], *, source: str, dry_run: bool = False,
                    on_chunk: Callable[[], None] | None = None) -> ApplyReport:
        """A person imports a file through a mapping (the web app's import page): the role's
        rules of `submit`, then `import_rows`. `kinds` are the command types the mapping makes;
        one the role may not import refuses the whole file (Forbidden, nothing read or
        stored). A customer's claim on an agreement not its own is rejected as one on an
        agreement that does not exist, as `submit` does."""
        allowed = self.importable(principal)
        refused = sorted(set(kinds) - allowed)
        if refused:
            needs_approval = sorted(set(refused) & self.proposal_commands
                                    & COMMANDS_BY_ROLE.get(principal.role, frozenset()))
            hint = (f"; {', '.join(needs_approval)} need a second person's approval: propose "
                    "them in the proposals inbox" if needs_approval else "")
            raise Forbidden(f"role {principal.role.value} may not import "
                            f"{', '.join(refused)} (it may import: "
                            f"{', '.join(sorted(allowed)) or 'nothing'}){hint}")

        def scoped(found: Iterable[MappedRow]) -> Iterable[MappedRow]:
            for row in found:
                if row.command is not None and (hidden := self._out_of_scope(principal,
                                                                             row.command)):
                    row = MappedRow(row.number, row.text, None, hidden)
                yield row

        return self.import_rows(principal, scoped(rows), source=source, dry_run=dry_run,
                                on_chunk=on_chunk)

    def import_lines(self, principal: Principal, lines: Iterable[bytes], *, source: str,
                     dry_run: bool = False,
                     on_chunk: Callable[[], None] | None = None) -> ApplyReport:
        """A person imports a JSON Lines file of contract commands (the web app's import page
        without a mapping): each line a row of `import_file`, the role's rules the same. The
        lines are read first (the caller bounds the file), so that a command type the role may
        not import refuses the whole file before anything is stored."""
        rows: list[MappedRow] = []
        kinds: set[str] = set()
        known = all_command_types()
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            command, problem = _parse(line)
            kind = command.kind if command is not None else c.command_type_of_line(line)
            if kind in known:  # an unknown type is the line's rejection, not a refusal
                kinds.add(kind)
            rows.append(MappedRow(number, _kept(line), command, problem))
        return self.import_file(principal, kinds, rows, source=source, dry_run=dry_run,
                                on_chunk=on_chunk)

    def _sqlite_file(self) -> Path | None:
        url = self.engine.url
        if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
            return None
        return Path(url.database)

    def _import_into_copy(self, principal: Principal, rows: Iterable[MappedRow], *,
                          source: str, on_chunk: Callable[[], None] | None) -> ApplyReport:
        """A dry run on a SQLite store: the import, for real, into a consistent copy of the
        store (SQLite's online backup) that is then deleted: exactly what the import would
        do, with no bound on the file's size; the store itself is only read."""
        import sqlite3

        with tempfile.TemporaryDirectory(prefix="ledger-dry-run-") as folder:
            copy = Path(folder) / "preview.db"
            raw = self.engine.raw_connection()
            try:
                target = sqlite3.connect(copy)
                try:
                    raw.driver_connection.backup(target)  # type: ignore[union-attr]
                finally:
                    target.close()
            finally:
                raw.close()
            scratch = LedgerService(Ledger(f"sqlite:///{copy}", clock=self.ledger.clock,
                                           settings=self.ledger.settings),
                                    self.proposal_commands)
            try:
                return scratch.import_rows(principal, rows, source=source, on_chunk=on_chunk)
            finally:
                scratch.close()

    def _kept_outcome(self, principal: Principal, key: str, request_hash: str) -> Outcome | None:
        with self.engine.connect() as connection:
            row = connection.execute(select(api_idempotency).where(
                api_idempotency.c.user_name == principal.name,
                api_idempotency.c.key == key)).first()
        if row is None:
            return None
        if row.request_sha256 != request_hash:
            raise Conflict(f"Idempotency-Key {key!r} was used for a different request; use a "
                           "new key for a new request")
        if row.status is None:
            raise Conflict(f"Idempotency-Key {key!r}: the first request with this key was "
                           "applied, but its answer was not kept (the server stopped); "
                           "nothing was applied again")
        return Outcome(int(row.status), orjson.loads(row.body))

    def _check_types(self, principal: Principal,
                     parsed: list[tuple[int, bytes, c.Command | None, Rejection | None]]
                     ) -> None:
        """Refuse the whole request (403, nothing applied) when it holds a command the role
        may not send; unknown types are left to be rejected as invalid lines."""
        allowed = COMMANDS_BY_ROLE[principal.role]
        known = all_command_types()
        refused = []
        for number, line, command, _ in parsed:
            kind = command.kind if command is not None else c.command_type_of_line(line)
            if kind in known and kind not in allowed:
                refused.append(f"line {number}: {kind}")
        if refused:
            may_send = ", ".join(sorted(allowed)) or "no commands"
            raise Forbidden(f"role {principal.role.value} may not send "
                            f"{'; '.join(refused[:10])} (it may send: {may_send})")

    def _out_of_scope(self, principal: Principal, command: c.Command) -> Rejection | None:
        """A customer's claim on another customer's agreement is rejected as one on an
        agreement that does not exist (the same words: nothing is told of the other)."""
        if principal.role is Role.customer and isinstance(command, c.SubmitClaim):
            owner = self._agreement_customer(command.agreement_id)
            if not principal.sees_customer(owner):
                return UnknownAgreement(command.agreement_id)
        return None

    def _apply(self, principal: Principal, records: list[SourcedCommand],
               extras: Callable[[Session], None], *, approved_by: str | None = None,
               proposal_id: str | None = None,
               check: Callable[[Session], None] | None = None,
               after: Callable[[Session, list[RejectionRecord]], None] | None = None,
               ) -> Any:
        """`Ledger.apply_records` in one transaction, recording the actor over the positions
        it stored and writing `extras` in the same transaction."""
        start: list[int] = []

        def skip_applied(session: Session) -> set[int]:
            if check is not None:
                check(session)
            start.append(self._position_now(session))
            return set()

        def before_commit(session: Session, rejected: list[RejectionRecord]) -> None:
            end = self._position_now(session)
            accounts.record_actor(session, start[0] + 1, end, principal,
                                  approved_by=approved_by, proposal_id=proposal_id)
            if after is not None:
                after(session, rejected)
            extras(session)

        with self._lock:  # one writer per process: the store serialises processes
            if not records:
                with Session(self.engine) as session, session.begin():
                    if check is not None:
                        check(session)
                    extras(session)
                return ApplyReport()
            return self.ledger.apply_records(records, skip_applied=skip_applied,
                                             before_commit=before_commit)

    def _what_if(self, command: c.Command, text: bytes) -> dict[str, Any] | Rejection:
        """Apply `command` in a transaction that is rolled back: its rejection, or the
        affected agreement's liability before and after."""
        agreement_id = getattr(command, "agreement_id", None)
        today = self.ledger.clock().astimezone(UTC).date()
        as_of = today
        if isinstance(command, c.CreateAgreement):
            as_of = min(max(today, command.period_start), command.period_end)
        seen: dict[str, Any] = {}

        def peek(session: Session, rejected: list[RejectionRecord]) -> None:
            if rejected:
                seen["rejection"] = rejected[0]
            elif agreement_id is not None:
                seen["after"] = liability_rows(session, as_of, None, agreement_id=agreement_id)
            raise _RolledBack

        before = self.ledger.liability(as_of, agreement_id=agreement_id) if agreement_id else []
        with self._lock, contextlib.suppress(_RolledBack):
            self.ledger.apply_records([SourcedCommand(1, text, command, None, "what-if")],
                                      before_commit=peek)
        if "rejection" in seen:
            record: RejectionRecord = seen["rejection"]
            return Rejection(record.field, record.reason, reason=record.reason)
        return {
            "as_of": as_of.isoformat(),
            "agreement_id": agreement_id,
            "before": [r.to_dict() for r in before],
            "after": [r.to_dict() for r in seen.get("after", [])],
        }

    def _agreement_customer(self, agreement_id: str) -> str | None:
        with self.engine.connect() as connection:
            return connection.execute(select(agreements.c.customer_id).where(
                agreements.c.agreement_id == agreement_id)).scalar()

    def _customer_of(self, session: Session, command: c.Command) -> str | None:
        customer: str | None = getattr(command, "customer_id", None)
        agreement_id: str | None = getattr(command, "agreement_id", None)
        if customer is None and agreement_id is not None:
            customer = session.execute(select(agreements.c.customer_id).where(
                agreements.c.agreement_id == agreement_id)).scalar()
        return customer

    # Proposals ---------------------------------------------------------------------------

    def proposals(self, principal: Principal, status: str | None = None,
                  limit: int = 1000) -> list[dict[str, Any]]:
        self.require(principal, Capability.proposals, "read proposals")
        query = select(api_proposals).order_by(api_proposals.c.proposed_us,
                                               api_proposals.c.proposal_id).limit(limit)
        if status is not None:
            if status not in ("pending", "approved", "rejected", "failed"):
                raise BadRequest("status", f"{status!r}: one of pending, approved, rejected, "
                                 "failed")
            query = query.where(api_proposals.c.status == status)
        with self.engine.connect() as connection:
            return [_proposal_dict(r) for r in connection.execute(query)]

    def proposal(self, principal: Principal, proposal_id: str) -> dict[str, Any]:
        self.require(principal, Capability.proposals, "read proposals")
        return _proposal_dict(self._proposal_row(proposal_id))

    def _proposal_row(self, proposal_id: str) -> Any:
        with self.engine.connect() as connection:
            row = connection.execute(select(api_proposals).where(
                api_proposals.c.proposal_id == proposal_id)).first()
        if row is None:
            raise NotFound(f"proposal_id: no proposal {proposal_id!r}")
        return row

    def approve(self, principal: Principal, proposal_id: str) -> Outcome:
        """Apply the proposal now, as its proposer's command approved by `principal`."""
        self.require(principal, Capability.approve, "approve proposals")
        row = self._proposal_row(proposal_id)
        if row.proposer == principal.name:
            raise Forbidden("four eyes: nobody approves their own proposal; another finance "
                            "or admin user must")
        text = row.command.encode()
        proposer = Principal(row.proposer, Role(row.proposer_role))
        decided: dict[str, Any] = {}

        def check(session: Session) -> None:
            status = session.execute(select(api_proposals.c.status).where(
                api_proposals.c.proposal_id == proposal_id)).scalar()
            if status != "pending":
                raise Conflict(f"proposal {proposal_id} is {status} already")

        def after(session: Session, rejected: list[RejectionRecord]) -> None:
            decided["status"] = "failed" if rejected else "approved"
            session.execute(update(api_proposals).where(
                api_proposals.c.proposal_id == proposal_id).values(
                status=decided["status"], decided_by=principal.name,
                decided_us=accounts.now_us(),
                reason=rejected[0].reason if rejected else None))

        record = SourcedCommand(1, text, c.parse_line(text), None, f"proposal:{proposal_id}")
        report = self._apply(proposer, [record], lambda _: None, approved_by=principal.name,
                             proposal_id=proposal_id, check=check, after=after)
        body = {"proposal": _proposal_dict(self._proposal_row(proposal_id)),
                "report": report.to_dict()}
        return Outcome(422 if report.rejected else 200, body)

    def reject_proposal(self, principal: Principal, proposal_id: str, reason: str) -> Outcome:
        self.require(principal, Capability.approve, "reject proposals")
        if not reason or not reason.strip():
            raise BadRequest("reason", "say why the proposal is rejected")
        if len(reason) > c.TEXT_LENGTH_MAX:
            raise BadRequest("reason", f"at most {c.TEXT_LENGTH_MAX} characters")
        row = self._proposal_row(proposal_id)
        if row.proposer == principal.name:
            raise Forbidden("four eyes: a proposer withdraws nothing by rejecting; another "
                            "finance or admin user decides")
        with self._lock, self.engine.begin() as connection:
            done = connection.execute(update(api_proposals).where(
                api_proposals.c.proposal_id == proposal_id,
                api_proposals.c.status == "pending").values(
                status="rejected", decided_by=principal.name, decided_us=accounts.now_us(),
                reason=reason)).rowcount
        if not done:
            raise Conflict(f"proposal {proposal_id} is {row.status} already")
        return Outcome(200, {"proposal": _proposal_dict(self._proposal_row(proposal_id))})

    # Reads -------------------------------------------------------------------------------

    def liability_rows(self, principal: Principal, as_of: date,
                       known_at: datetime | None = None, *, agreement_id: str | None = None,
                       customer_id: str | None = None, group_id: str | None = None,
                       program_id: str | None = None
                       ) -> tuple[list[LiabilityRow], str, datetime]:
        """The liability rows at (D, K), where they came from (`core`, or a projection that has
        caught up with the store: ledger.projections.reader) and the moment of the answer; a
        sales or customer user gets only rows of its own customers. The one door of every
        liability read (CLI, API, web)."""
        return self._liability_rows(principal, as_of, known_at, agreement_id=agreement_id,
                                    customer_id=customer_id, group_id=group_id,
                                    program_id=program_id)

    def _liability_rows(self, principal: Principal, as_of: date,
                        known_at: datetime | None = None, *, agreement_id: str | None = None,
                        customer_id: str | None = None, group_id: str | None = None,
                        program_id: str | None = None, kept_only: bool = False
                        ) -> tuple[list[LiabilityRow], str, datetime]:
        """`liability_rows`; with `kept_only`, from kept answers only (`_NotKept` when one
        would have to be computed)."""
        from ledger.projections.reader import liability_answer

        self.require(principal, Capability.read, "read the liability")
        answered_at = self.ledger.clock()
        # read before computing: see ledger.answers (an answer holds for its store position
        # and read-table generation)
        position = self._answers_stamp()

        def answer(customer: str | None) -> tuple[list[LiabilityRow], str]:
            key = ("liability", as_of, known_at, agreement_id, customer, group_id, program_id)
            kept = self.answers.get(position, key)
            if kept is not None:
                return list(kept[0]), kept[1]
            if kept_only:
                raise _NotKept
            found, source = liability_answer(self.ledger, as_of, known_at,
                                              agreement_id=agreement_id, customer_id=customer,
                                              group_id=group_id, program_id=program_id)
            self.answers.put(position, key, tuple(found), source)
            return found, source

        rows: list[LiabilityRow]
        if principal.role in (Role.sales, Role.customer):
            if customer_id is not None:
                wanted = [customer_id] if principal.sees_customer(customer_id) else []
            else:
                wanted = sorted(principal.customers)
            found: dict[str, LiabilityRow] = {}
            sources = set()
            for customer in wanted:
                part, source = answer(customer)
                sources.add(source)
                found.update((row.agreement_id, row) for row in part)
            rows = [found[k] for k in sorted(found)]
            source = ", ".join(sorted(sources)) or "core"
        else:
            rows, source = answer(customer_id)
        return rows, source, answered_at

    def liability(self, principal: Principal, as_of: date, known_at: datetime | None = None,
                  *, agreement_id: str | None = None,
                  customer_id: str | None = None) -> dict[str, Any]:
        """What `liability --format json` prints; a sales or customer user gets only rows of
        its own customers."""
        rows, _, answered_at = self.liability_rows(principal, as_of, known_at,
                                                   agreement_id=agreement_id,
                                                   customer_id=customer_id)
        return _liability_document(rows, as_of, known_at, answered_at)

    def liability_kept(self, principal: Principal, as_of: date,
                       known_at: datetime | None = None, *, agreement_id: str | None = None,
                       customer_id: str | None = None) -> dict[str, Any] | None:
        """What `liability` answers if it is kept for the store's current position
        (ledger.answers: one indexed query, nothing computed), else None: the HTTP API answers
        these on its event loop, without handing the request to a thread."""
        try:
            rows, _, answered_at = self._liability_rows(
                principal, as_of, known_at, agreement_id=agreement_id, customer_id=customer_id,
                kept_only=True)
        except _NotKept:
            return None
        return _liability_document(rows, as_of, known_at, answered_at)

    def claims(self, principal: Principal, *, agreement_id: str | None = None,
               customer_id: str | None = None, status: str | None = None) -> dict[str, Any]:
        """What `claims --format json` prints: the claims register (one row per claim with its
        status, claimed, approved and paid amounts and the events behind them), sorted by claim
        id; from the claims projection when it has caught up with the store, else folded from
        the claims' events. A sales or customer user sees only its own customers' claims
        (another customer or its agreement is a 404)."""
        from ledger.projections.reader import claims_answer

        self.require(principal, Capability.read, "read claims")
        if status is not None and status not in CLAIM_STATUSES:
            raise BadRequest("status", f"{status!r}: one of {', '.join(CLAIM_STATUSES)}")
        for name, value in (("agreement", agreement_id), ("customer", customer_id)):
            if value is not None and "\x00" in value:
                raise BadRequest(name, "holds a NUL character; no id does: give the id as "
                                 "it was recorded")
        scoped = principal.role in (Role.sales, Role.customer)
        if scoped and customer_id is not None and not principal.sees_customer(customer_id):
            raise NotFound(f"customer: no customer {customer_id!r}")
        if scoped and agreement_id is not None:
            self._visible_agreement(principal, agreement_id)
        wanted = [customer_id] if customer_id is not None or not scoped else sorted(
            principal.customers)  # a scoped user's customers, never the whole register
        rows = []
        for customer in wanted:
            answer = claims_answer(self.ledger, agreement_id=agreement_id, customer_id=customer)
            rows += answer[0] if answer is not None else self._claims_from_events(
                agreement_id, customer)
        rows.sort(key=lambda row: row.claim_id)
        return {"claims": [
            row.to_dict() for row in rows
            if (status is None or row.status == status)
            and (not scoped or principal.sees_customer(row.customer_id))
        ]}

    def _claims_from_events(self, agreement_id: str | None,
                            customer_id: str | None) -> list[ClaimRow]:
        from ledger.aggregates import claim_uuid
        from ledger.events.codec import decode_event
        from ledger.events.envelope import event_id_of
        from ledger.projections.core import claims as core_claims

        query = select(core_claims.c.claim_id, agreements.c.customer_id).join(
            agreements, agreements.c.agreement_id == core_claims.c.agreement_id
        ).order_by(core_claims.c.claim_id)
        if agreement_id is not None:
            query = query.where(core_claims.c.agreement_id == agreement_id)
        if customer_id is not None:
            query = query.where(agreements.c.customer_id == customer_id)
        with self.engine.connect() as connection:
            found = connection.execute(query).all()
        table = events_table(self.ledger.app.recorder)
        rows = []
        for start in range(0, len(found), 500):  # a few queries, not one per claim
            chunk = {claim_uuid(claim_id): customer for claim_id, customer in
                     found[start:start + 500]}
            events: dict[Any, list[tuple[str, Any]]] = {key: [] for key in chunk}
            with self.engine.connect() as connection:
                for s in connection.execute(
                        select(table.c.originator_id, table.c.originator_version,
                               table.c.topic, table.c.state)
                        .where(table.c.originator_id.in_(list(chunk)))
                        .order_by(table.c.originator_id, table.c.originator_version)):
                    events[s.originator_id].append((
                        event_id_of(s.originator_id, s.originator_version),
                        decode_event(s.topic, s.state)))
            rows += [_claim_row(chunk[key], events[key]) for key in chunk]
        return rows

    def _visible_agreement(self, principal: Principal, agreement_id: str) -> Any:
        with self.engine.connect() as connection:
            row = connection.execute(select(agreements).where(
                agreements.c.agreement_id == agreement_id)).first()
        if row is None or not principal.sees_customer(row.customer_id):
            raise NotFound(f"agreement_id: no agreement {agreement_id!r}")
        return row

    def agreement(self, principal: Principal, agreement_id: str) -> dict[str, Any]:
        """The agreement with its terms history: every version with its effective date, when
        it was recorded and who recorded it."""
        self.require(principal, Capability.read, "read agreements")
        head = self._visible_agreement(principal, agreement_id)
        with Session(self.engine) as session:
            changes = session.execute(select(terms_changes).where(
                terms_changes.c.agreement_id == agreement_id)
                .order_by(terms_changes.c.position, terms_changes.c.id)).all()
            actors = accounts.actors_at(session, [int(r.position) for r in changes])
        versions = []
        for change in changes:
            who = actors[int(change.position)]
            versions.append({
                "kind": change.kind,
                "effective_from": None if change.effective_day is None
                else date.fromordinal(change.effective_day).isoformat(),
                "recorded_at": timestamp_text(from_us(change.recorded_us)),
                "recorded_by": who.actor,
                "role": who.role,
                "approved_by": who.approved_by,
                "event_id": change.event_id,
                "position": int(change.position),
                "terms": orjson.loads(change.data),
            })
        return {"agreement_id": head.agreement_id, "customer_id": head.customer_id,
                "currency": head.currency, "versions": versions}

    def _with_recorders(self, document: bytes) -> bytes:
        """`document` (a tool's JSON) with `recorded_by`: who recorded each event it names,
        by event id (`unknown` for events stored before actors were recorded)."""
        from ledger.audit.chain import event_chain

        ids = sorted({m.decode() for m in EVENT_ID.findall(document)})
        wanted: dict[tuple[str, int], str] = {}
        for event_id in ids:
            originator, _, version = event_id.partition("/")
            wanted[(originator, int(version))] = event_id
        positions: dict[str, int] = {}
        originators = sorted({o for o, _ in wanted})
        with Session(self.engine) as session:
            for start in range(0, len(originators), 500):
                for row in session.execute(select(
                        event_chain.c.originator_id, event_chain.c.originator_version,
                        event_chain.c.position).where(
                        event_chain.c.originator_id.in_(originators[start:start + 500]))):
                    found = wanted.get((row.originator_id, int(row.originator_version)))
                    if found is not None:
                        positions[found] = int(row.position)
            actors = accounts.actors_at(session, positions.values())
        value = orjson.loads(document)
        value["recorded_by"] = {
            event_id: (actors[positions[event_id]] if event_id in positions
                       else accounts.UNKNOWN).to_dict()
            for event_id in ids
        }
        return orjson.dumps(value)

    def check_names(self, *, known_at: datetime | None = None,
                    **names: tuple[str, str | None]) -> None:
        """Refuse a filter naming an id the store has never seen, or a known_at before its
        first recorded command (ledger.lookup.check_names: the error names the option)."""
        from ledger.lookup import check_names

        check_names(self.engine, known_at=known_at, **names)

    def explain_report(self, principal: Principal, agreement_id: str, as_of: date,
                       known_at: datetime | None = None) -> Report:
        """`explain`: how one agreement's liability at D as known at K comes about."""
        from ledger.audit.explain import explain_report
        from ledger.audit.facts import UnknownAgreement as NotKnown

        self.require(principal, Capability.read, "explain")
        self._visible_agreement(principal, agreement_id)
        try:
            return explain_report(self.ledger, agreement_id, as_of, known_at)
        except NotKnown as error:
            raise NotFound(f"agreement_id: {error}") from None

    def explain(self, principal: Principal, agreement_id: str, as_of: date,
                known_at: datetime | None = None) -> bytes:
        return self._with_recorders(
            self.explain_report(principal, agreement_id, as_of, known_at).to_json())

    def opportunities_report(self, principal: Principal, as_of: date,
                             known_at: datetime | None = None, *,
                             customer_id: str | None = None, limit: int | None = None,
                             agreement_id: str | None = None) -> Report:
        """`opportunities`: agreements below a next tier, by the extra rebate it unlocks."""
        from ledger.audit.opportunities import opportunities_report

        self.require(principal, Capability.read, "read opportunities")
        customer_id = self._own_customer(principal, customer_id)
        if agreement_id is not None:
            self._visible_agreement(principal, agreement_id)
        return opportunities_report(self.ledger, as_of, known_at, customer_id=customer_id,
                                    limit=limit, agreement_id=agreement_id)

    def opportunities(self, principal: Principal, as_of: date,
                      known_at: datetime | None = None, *, customer_id: str | None = None,
                      limit: int | None = None) -> bytes:
        return self.opportunities_report(principal, as_of, known_at, customer_id=customer_id,
                                         limit=limit).to_json()

    @staticmethod
    def _own_customer(principal: Principal, customer_id: str | None) -> str | None:
        """A sales or customer user reads one of its own customers (the only one when it has
        one); another customer is a 404."""
        if principal.role in (Role.sales, Role.customer):
            if customer_id is None and len(principal.customers) == 1:
                customer_id = next(iter(principal.customers))
            if customer_id is None:
                raise BadRequest("customer", "give one of your customers: "
                                 + ", ".join(sorted(principal.customers)))
            if not principal.sees_customer(customer_id):
                raise NotFound(f"customer: no customer {customer_id!r}")
        return customer_id

    def positions_report(self, principal: Principal, customer_id: str, as_of: date,
                         known_at: datetime | None = None) -> Report:
        """Contract v2 enrollment at a glance (`positions`): every agreement covering the
        customer, its own and its groups'. A sales rep or customer asks for one of its
        customers; another customer is a 404."""
        from ledger.audit.positions import positions_report

        self.require(principal, Capability.read, "read positions")
        if principal.role in (Role.sales, Role.customer) and not principal.sees_customer(
                customer_id):
            raise NotFound(f"customer: no customer {customer_id!r}")
        return positions_report(self.ledger, customer_id, as_of, known_at)

    def positions(self, principal: Principal, customer_id: str, as_of: date,
                  known_at: datetime | None = None) -> bytes:
        return self.positions_report(principal, customer_id, as_of, known_at).to_json()

    def programs_report(self, principal: Principal, as_of: date,
                        known_at: datetime | None = None) -> Report:
        """Programs with their enrolled agreements and totals (`programs`): every customer's
        figures, so for the books' readers only."""
        from ledger.audit.positions import programs_report

        self.require(principal, Capability.read_books, "read programs")
        return programs_report(self.ledger, as_of, known_at)

    def programs(self, principal: Principal, as_of: date,
                 known_at: datetime | None = None) -> bytes:
        return self.programs_report(principal, as_of, known_at).to_json()

    def journal(self, principal: Principal, as_of: date, known_at: datetime | None = None, *,
                agreement_id: str | None = None, customer_id: str | None = None,
                after: int = 0, limit: int | None = None) -> bytes:
        """The journal (`journal --format json`); with `after` and `limit`, the entries
        numbered after `after`, at most `limit` of them, and `next`: the cursor of the next
        page (null on the last)."""
        from ledger.audit.journal import journal_page

        self.require(principal, Capability.read_books, "read the journal")
        if after < 0 or (limit is not None and limit < 1):
            raise BadRequest("after" if after < 0 else "limit",
                             "after is 0 or more, limit 1 or more")
        # streamed: only the page's rows are kept (issue 11)
        report = journal_page(self.ledger, as_of, known_at, agreement_id=agreement_id,
                              customer_id=customer_id, after=after, limit=limit)
        if after or limit is not None:
            last = report.extra["entries"] if limit is None else after + limit
            report.extra = {**report.extra, "next": last if last < report.extra["entries"]
                            else None}
        return self._with_recorders(report.to_json())

    def write_journal(self, principal: Principal, as_of: date, known_at: datetime | None,
                      output: str, stream: TextIO, console: Any, *,
                      agreement_id: str | None = None, customer_id: str | None = None,
                      plain_above: int | None = None) -> None:
        """The whole journal written to `stream` as it is computed (`journal` on the command
        line: bounded memory at any history size)."""
        from ledger.audit.journal import write_journal

        self.require(principal, Capability.read_books, "read the journal")
        kwargs = {} if plain_above is None else {"plain_above": plain_above}
        write_journal(self.ledger, as_of, known_at, output, stream, console,
                      agreement_id=agreement_id, customer_id=customer_id, **kwargs)

    def write_journal_workbook(self, principal: Principal, as_of: date,
                               known_at: datetime | None, handle: Any, *,
                               agreement_id: str | None = None,
                               customer_id: str | None = None) -> int:
        """The journal as an Excel workbook streamed into `handle` in bounded memory
        (`journal --format xlsx --out FILE`); the number of postings."""
        from ledger.audit.xlsx import write_journal as write_workbook

        self.require(principal, Capability.read_books, "read the journal")
        return write_workbook(self.ledger, as_of, known_at, handle, agreement_id=agreement_id,
                              customer_id=customer_id)

    def trial_balance_report(self, principal: Principal, as_of: date,
                             known_at: datetime | None = None, *,
                             agreement_id: str | None = None,
                             customer_id: str | None = None) -> Report:
        """`trial-balance --as-of D`: debits, credits and balance per currency and account,
        with its checks."""
        from ledger.audit.journal import trial_balance_report

        self.require(principal, Capability.read_books, "read the trial balance")
        # the contract's liability: the answer `liability_rows` keeps for this store position
        # (a whole-book reader's rows are not scoped), not computed again (issue 9: /audit)
        liability, _, _ = self.liability_rows(principal, as_of, known_at,
                                              agreement_id=agreement_id,
                                              customer_id=customer_id)
        return trial_balance_report(self.ledger, as_of, known_at, agreement_id=agreement_id,
                                    customer_id=customer_id, liability=liability)

    def trial_balance(self, principal: Principal, as_of: date,
                      known_at: datetime | None = None, *, agreement_id: str | None = None,
                      customer_id: str | None = None) -> bytes:
        return self.trial_balance_report(principal, as_of, known_at, agreement_id=agreement_id,
                                         customer_id=customer_id).to_json()

    def period_report(self, principal: Principal, start: date, end: date,
                      known_at: datetime | None = None, *, trial: bool,
                      agreement_id: str | None = None,
                      customer_id: str | None = None) -> Report:
        """`journal --from D1 --to D2` (the period's postings) or, `trial`, `trial-balance
        --from D1 --to D2` (opening, movements, closing and the checks)."""
        from ledger.audit.period import (
            check_period,
            period_journal_report,
            period_trial_balance_report,
        )

        self.require(principal, Capability.read_books, "read the journal")
        check_period(start, end)
        build = period_trial_balance_report if trial else period_journal_report
        return build(self.ledger, start, end, known_at, agreement_id=agreement_id,
                     customer_id=customer_id)

    def workbook(self, principal: Principal, report: str, as_of: date,
                 known_at: datetime | None = None, *, agreement_id: str | None = None,
                 customer_id: str | None = None, vs: datetime | None = None,
                 grace_days: int = 60, unpaid_days: int = 30, flagged_only: bool = False,
                 limit: int | None = None) -> bytes:
        """The report `report` (one of `WORKBOOKS`) as an Excel workbook (`ledger.audit.xlsx`):
        the rows of its JSON, with the same rights and the same scoping as that read."""
        import io

        from ledger.audit import xlsx
        from ledger.audit.output import Report

        buffer = io.BytesIO()
        if report == "liability":
            document = self.liability(principal, as_of, known_at, agreement_id=agreement_id,
                                      customer_id=customer_id)
            rows = document["rows"]
            xlsx.write_report(Report(
                f"Rebate liability as of {as_of}, as known at {document['known_at']}",
                list(rows[0]) if rows else xlsx.LIABILITY_COLUMNS, rows,
                meta={"as_of": as_of, "known_at": document["known_at"]}),
                buffer, name="liability")
        elif report == "journal":
            self.require(principal, Capability.read_books, "read the journal")
            xlsx.write_journal(self.ledger, as_of, known_at, buffer, agreement_id=agreement_id,
                               customer_id=customer_id)
        elif report == "explain":
            from ledger.audit.explain import explain_report
            from ledger.audit.facts import UnknownAgreement as NotKnown

            self.require(principal, Capability.read, "explain")
            if agreement_id is None:
                raise BadRequest("agreement", "give the agreement to explain")
            self._visible_agreement(principal, agreement_id)
            try:
                found = explain_report(self.ledger, agreement_id, as_of, known_at)
            except NotKnown as error:
                raise NotFound(f"agreement_id: {error}") from None
            xlsx.write_report(found, buffer, name="explain")
        elif report == "opportunities":
            from ledger.audit.opportunities import opportunities_report

            self.require(principal, Capability.read, "read opportunities")
            customer_id = self._own_customer(principal, customer_id)
            xlsx.write_report(opportunities_report(
                self.ledger, as_of, known_at, customer_id=customer_id, limit=limit,
                agreement_id=agreement_id), buffer, name="opportunities")
        elif report in ("trial-balance", "reconcile", "diff"):
            from ledger.audit.diff import diff_report
            from ledger.audit.journal import trial_balance_report
            from ledger.audit.reconcile import reconcile_report

            self.require(principal, Capability.read_books, f"read the {report}")
            if report == "trial-balance":
                found = trial_balance_report(self.ledger, as_of, known_at,
                                             agreement_id=agreement_id,
                                             customer_id=customer_id)
            elif report == "reconcile":
                found = reconcile_report(self.ledger, as_of, known_at, grace_days=grace_days,
                                         unpaid_days=unpaid_days, customer_id=customer_id,
                                         flagged_only=flagged_only, agreement_id=agreement_id)
            else:
                if known_at is None:
                    raise BadRequest("known_at", "diff compares two moments: give known_at "
                                     "(K1) and optionally vs (K2, default now)")
                if vs is not None and vs < known_at:
                    raise BadRequest("vs", "must not be before known_at")
                found = diff_report(self.ledger, as_of, known_at, vs, agreement_id=agreement_id)
            xlsx.write_report(found, buffer, name=report)
        else:
            raise NotFound(f"report: no workbook {report!r}; the workbooks are: "
                           + ", ".join(WORKBOOKS))
        return buffer.getvalue()

    def gl_export(self, principal: Principal, start: date, end: date, accounts_toml: str,
                  known_at: datetime | None = None, reverses: datetime | None = None
                  ) -> tuple[Any, Any]:
        """The general-ledger export of the period `start` to `end` as known at `known_at`
        (default: now) under the accounts mapping `accounts_toml` (`ledger.audit.gl`); with
        `reverses`, what to upload after the export as known at that earlier moment.
        Returns (GLExport, GLMapping)."""
        from ledger.audit.gl import build_export, parse_mapping, re_export

        self.require(principal, Capability.read_books, "export to the general ledger")
        mapping = parse_mapping(accounts_toml)
        known = known_at if known_at is not None else self.ledger.clock()
        if reverses is not None and reverses >= known:
            raise BadRequest("reverses", "the earlier export's known_at must be before the "
                             "new export's (--known-at, default now)")
        export = build_export(self.ledger, start, end, known, mapping)
        if reverses is not None:
            export = re_export(build_export(self.ledger, start, end, reverses, mapping),
                               export)
        return export, mapping

    def reconcile_report(self, principal: Principal, as_of: date,
                         known_at: datetime | None = None, *, customer_id: str | None = None,
                         agreement_id: str | None = None, grace_days: int = 60,
                         unpaid_days: int = 30, flagged_only: bool = False) -> Report:
        """`reconcile`: accrued, claimed, approved, paid, written off per agreement, flagged."""
        from ledger.audit.reconcile import reconcile_report

        self.require(principal, Capability.read_books, "reconcile")
        return reconcile_report(self.ledger, as_of, known_at, grace_days=grace_days,
                                unpaid_days=unpaid_days, customer_id=customer_id,
                                flagged_only=flagged_only, agreement_id=agreement_id)

    def reconcile(self, principal: Principal, as_of: date, known_at: datetime | None = None,
                  *, customer_id: str | None = None, grace_days: int = 60,
                  unpaid_days: int = 30, flagged_only: bool = False) -> bytes:
        return self.reconcile_report(principal, as_of, known_at, customer_id=customer_id,
                                     grace_days=grace_days, unpaid_days=unpaid_days,
                                     flagged_only=flagged_only).to_json()

    def diff_report(self, principal: Principal, as_of: date, k1: datetime,
                    k2: datetime | None = None, *, agreement_id: str | None = None,
                    detail: bool = False, with_changes: bool = True) -> Report:
        """`diff`: what changed in the position at D between K1 and K2, by cause."""
        from ledger.audit.diff import diff_report

        self.require(principal, Capability.read_books, "diff")
        if k2 is not None and k2 < k1:
            raise BadRequest("vs", "must not be before known_at")
        return diff_report(self.ledger, as_of, k1, k2, agreement_id=agreement_id,
                           detail=detail, with_changes=with_changes)

    def write_diff(self, principal: Principal, as_of: date, k1: datetime,
                   k2: datetime | None, output: str, stream: TextIO, *,
                   agreement_id: str | None = None, detail: bool = False) -> None:
        """The diff's JSON or CSV written to `stream` as it is computed (bounded memory)."""
        from ledger.audit.diff import write_diff

        self.require(principal, Capability.read_books, "diff")
        if k2 is not None and k2 < k1:
            raise BadRequest("vs", "must not be before known_at")
        write_diff(self.ledger, as_of, k1, k2, output, stream, agreement_id=agreement_id,
                   detail=detail)

    def diff(self, principal: Principal, as_of: date, k1: datetime,
             k2: datetime | None = None) -> bytes:
        return self._with_recorders(self.diff_report(principal, as_of, k1, k2).to_json())

    def diff_page(self, principal: Principal, as_of: date, k1: datetime,
                  k2: datetime | None = None, *, after: str | None = None,
                  limit: int = 100) -> bytes:
        """A page of `diff` (the web page): the first `limit` changed agreements after the
        agreement id `after`, with who recorded each event; `next` continues it. Only the
        agreements the page needs are computed (ledger.audit.diff.diff_page)."""
        from ledger.audit.diff import diff_page

        self.require(principal, Capability.read_books, "diff")
        if k2 is not None and k2 < k1:
            raise BadRequest("vs", "must not be before known_at")
        if not 1 <= limit <= 10_000:
            raise BadRequest("limit", f"{limit}: 1 to 10,000 agreements a page")
        return self._with_recorders(orjson.dumps(diff_page(self.ledger, as_of, k1, k2,
                                                           after=after, limit=limit)))

    def simulate_report(self, principal: Principal, draft: Sequence[bytes],
                        as_of: date | None = None) -> Report:
        """`simulate`: a draft agreement over the recorded sales, month by month; nothing is
        stored."""
        from ledger.audit.simulate import read_draft, simulate_report

        self.require(principal, Capability.read_books, "simulate")
        return simulate_report(self.ledger, read_draft(list(draft)), as_of)

    def simulate(self, principal: Principal, draft: Sequence[bytes],
                 as_of: date | None = None) -> bytes:
        return self.simulate_report(principal, draft, as_of).to_json()

    def rejections(self, principal: Principal, limit: int | None = None) -> dict[str, Any]:
        """What `rejections --format json` prints."""
        self.require(principal, Capability.read_books, "read rejections")
        return {"rejections": [
            {"rejected_at": timestamp_text(r.rejected_at) if r.rejected_at else None,
             "source": r.source, "line": r.line, "command": r.command_type,
             "field": r.field, "reason": r.reason, "text": r.command}
            for r in self.ledger.rejections(limit=limit)
        ]}

    def periods(self, principal: Principal, known_at: datetime | None = None
                ) -> dict[str, Any]:
        from ledger.audit.close import period_closes

        self.require(principal, Capability.read_books, "read period closes")
        return {"periods": [
            {"period": p.period, "period_start": p.start.isoformat(),
             "period_end": p.end.isoformat(), "closed_at": timestamp_text(p.closed_at),
             "event_id": p.event_id, "position": p.position,
             "reported": list(p.reported.values())}
            for p in period_closes(self.ledger, known_at)
        ]}

    def close_books(self, principal: Principal, label: str, first: date, last: date,
              recorded_at: datetime | None = None
              ) -> tuple[str, int, datetime, list[LiabilityRow]]:
        """Close the period `label` (`first` to `last`): freeze the liability at its end as
        known now (`recorded_at` when loading history); the principal is recorded as who
        closed it. (event id, store position, closed at, the reported rows)"""
        self.require(principal, Capability.close, "close a period")
        with self._lock:
            event_id, position, closed_at, rows = self.ledger.close_period(
                label, first, last, recorded_at)
            with Session(self.engine) as session, session.begin():
                accounts.record_actor(session, position, position, principal)
        return event_id, position, closed_at, rows

    def close_period(self, principal: Principal, period: str | None, start: date | None,
                     end: date | None) -> dict[str, Any]:
        from ledger.audit.close import parse_period

        self.require(principal, Capability.close, "close a period")
        label, first, last = parse_period(period, start, end)
        event_id, position, closed_at, rows = self.close_books(principal, label, first, last)
        return {"period": label, "period_start": first.isoformat(),
                "period_end": last.isoformat(), "closed_at": timestamp_text(closed_at),
                "event_id": event_id, "position": position,
                "rows": [r.to_dict() for r in rows]}

    def verify_checks(self, principal: Principal, *, digest: Any = None,
                      log_check: Callable[[Ledger], tuple[list[Any], int]] | None = None
                      ) -> tuple[Any, Any]:
        """`verify`: both hash chains (against a published `digest` when given, and the
        events topic by `log_check` when given) and the read tables re-derived from the
        events. (chain result, tables result)"""
        from ledger.audit.chain import verify_store
        from ledger.audit.tables import verify_tables

        self.require(principal, Capability.verify, "verify the store")
        with Session(self.engine) as session:
            result = verify_store(session, self.ledger.app.recorder, digest=digest)
        if log_check is not None:
            breaks, records = log_check(self.ledger)
            result.breaks.extend(breaks)
            result.breaks.sort(key=lambda b: b.position)
            result.log_checked, result.log_records = True, records
        return result, verify_tables(self.ledger)

    def verify(self, principal: Principal) -> dict[str, Any]:
        from ledger.audit.tables import verify_document

        result, tables = self.verify_checks(principal)
        return verify_document(result, tables)

    def digest(self, principal: Principal) -> tuple[Any, datetime]:
        """The head of the store's hash chain (to publish) and when it was taken."""
        from ledger.audit.chain import digest as head

        self.require(principal, Capability.verify, "take a digest")
        with Session(self.engine) as session:
            found = head(session)
        return found, self.ledger.clock()

    def rechain(self, principal: Principal) -> int:
        """Chain every event of a store that predates tamper evidence (refused for a store
        that had a chain); the number of events chained."""
        from ledger.audit.chain import rechain as chain_all

        self.require(principal, Capability.users, "re-chain the store")
        with Session(self.engine) as session, session.begin():
            return chain_all(session, self.ledger.app.recorder)

    def rebuild_tables(self, principal: Principal) -> tuple[list[str], dict[str, int]]:
        """Re-derive every core read table from the stored events (refused while the chain
        is broken: StoreDamaged names the first break). (tables that were missing, rows
        written per table)"""
        from ledger.audit.chain import verify_store
        from ledger.audit.tables import rebuild_tables as rebuild

        self.require(principal, Capability.users, "rebuild the read tables")
        with Session(self.engine) as session:
            chain = verify_store(session, self.ledger.app.recorder)
        if chain.breaks:
            first = chain.breaks[0]
            raise StoreDamaged(
                f"rebuild-tables refused: the events' hash chain is broken at position "
                f"{first.position} ({first.what}); tables derived from altered events would "
                "carry the alteration. Run `rebate-ledger verify`")
        missing = list(self.ledger.missing_tables)
        return missing, rebuild(self.ledger)

    def write_evidence(self, principal: Principal, as_of: date, known_at: datetime | None,
                       out: Path, *, force: bool = False) -> Any:
        """Write the evidence pack to `out` (never a file of the store; `force` replaces an
        existing file); what was written and its verdicts."""
        from ledger.audit.evidence import write_pack

        self.require(principal, Capability.verify, "take an evidence pack")
        return write_pack(self.ledger, as_of, known_at, out, force=force)

    def evidence(self, principal: Principal, as_of: date,
                 known_at: datetime | None = None) -> bytes:
        """The evidence pack (a zip) for the position at D as known at K."""
        from ledger.audit.evidence import write_pack

        self.require(principal, Capability.verify, "take an evidence pack")
        with tempfile.TemporaryDirectory(prefix="ledger-evidence-") as folder:
            out = Path(folder) / "evidence.zip"
            write_pack(self.ledger, as_of, known_at, out)
            return out.read_bytes()

    def event(self, principal: Principal, reference: str) -> dict[str, Any]:
        """One stored event by its store position or its event id (`<aggregate>/<version>`,
        as every report prints it): type, times, who recorded it, the business ids it is
        about, the payload as stored and its place in the hash chains."""
        from ledger.audit import event_view
        from ledger.events.codec import decode_event
        from ledger.events.envelope import event_id_of

        self.require(principal, Capability.read_books, "read the event log")
        wanted = event_view.parse_reference(reference)
        if wanted is None:
            raise BadRequest("ID", f"{reference!r} is neither a store position (a whole number) "
                             "nor an event id such as 0b7e5c1e-8f0c-4c3e-9d1a-2f6b3c4d5e6f/1 "
                             "(the form reports print); copy it from the report")
        recorder = self.ledger.app.recorder
        with Session(self.engine) as session:
            row = event_view.find_stored(session, recorder, wanted)
            if row is None:
                first, last = event_view.store_span(session, recorder)
                held = f"positions {first} to {last}" if last else "no events yet"
                raise NotFound(f"ID: no event {wanted} in this store (it holds {held}); check "
                               "the id and --database")
            position = int(row.id)
            actor = accounts.actors_at(session, [position])[position]
            chain = event_view.chain_place(session, position)
        event = decode_event(row.topic, row.state)
        return {
            "position": position,
            "event_id": event_id_of(row.originator_id, row.originator_version),
            "type": event.event_type(),
            "about": event_view.business_ref(event),
            "valid_time": event.valid_time.isoformat(),
            "recorded_time": timestamp_text(event.recorded_at),
            **actor.to_dict(),
            "chain": chain,
            "payload": orjson.loads(bytes(row.state)),
        }

    def events(self, principal: Principal, after: int = 0,
               limit: int = 1000) -> dict[str, Any]:
        """The store's events after position `after`, in store order, each with who recorded
        it; `next` is the cursor of the following page."""
        from ledger.events.codec import decode_event
        from ledger.events.envelope import event_id_of

        self.require(principal, Capability.read_books, "read the event log")
        if after < 0:
            raise BadRequest("after", f"{after}: a store position, 0 or more")
        if not (1 <= limit <= EVENT_PAGE_MAX):
            raise BadRequest("limit", f"{limit}: from 1 to {EVENT_PAGE_MAX}")
        recorder = self.ledger.app.recorder
        notifications = recorder.select_notifications(start=after + 1, limit=limit)
        with Session(self.engine) as session:
            actors = accounts.actors_at(session, [n.id for n in notifications])
        items = []
        for notification in notifications:
            event = decode_event(notification.topic, notification.state)
            items.append({
                "position": notification.id,
                "event_id": event_id_of(event.originator_id, event.originator_version),
                "type": event.event_type(),
                "valid_time": event.valid_time.isoformat(),
                "recorded_time": timestamp_text(event.recorded_at),
                **actors[notification.id].to_dict(),
                "payload": orjson.loads(event.model_dump_json()),
            })
        return {"events": items, "next": items[-1]["position"] if items else after}

    # Kafka workers (ledger.workers): the entrypoint names the worker, the service hands it
    # the store; operators only (whoever holds the database: the CLI's principal)

    def run_relay(self, principal: Principal, relay: RelayWorker, kafka: KafkaSettings,
                  home: Path, *, once: bool = False, from_position: int | None = None,
                  echo: Callable[[str], None] = print) -> int:
        """`relay`: publish every stored event, in store order, to the events topic. The
        worker's exit status."""
        self.require(principal, Capability.users, "run the relay")
        return relay(self.ledger, kafka, home, once=once, echo=echo,
                     from_position=from_position)

    def run_intake(self, principal: Principal, intake: IntakeWorker, kafka: KafkaSettings,
                   home: Path, *, group_id: str | None = None,
                   until_idle_s: float | None = None,
                   echo: Callable[[str], None] = print) -> int:
        """`intake`: apply the sales and commands topics to the store, exactly once in
        effect. The worker's exit status."""
        self.require(principal, Capability.users, "run intake")
        return intake(self.ledger, kafka, home, group_id=group_id, until_idle_s=until_idle_s,
                      echo=echo)

    def run_projection(self, principal: Principal, project: ProjectionWorker,
                       kafka: KafkaSettings, home: Path, *, until_idle_s: float | None,
                       poll_records: int, console: Any) -> int:
        """`project`: feed the projections from the events topic. The worker's exit
        status."""
        self.require(principal, Capability.users, "run the projections")
        return project(self.ledger, kafka, home, until_idle_s=until_idle_s,
                       poll_records=poll_records, console=console)

    def replay_projection(self, principal: Principal, replay: ReplayWorker, name: str,
                          kafka: KafkaSettings, home: Path, console: Any) -> int:
        """`replay NAME`: rebuild one projection from the start of the events topic into a
        fresh generation and swap it in. The worker's exit status."""
        self.require(principal, Capability.users, "replay a projection")
        return replay(self.ledger, name, kafka, home, console)

    def audit_view(self, principal: Principal, view: AuditViewWorker, as_of: date,
                   known_at: datetime | None, kafka: KafkaSettings, home: Path, *,
                   output: str, console: Any, err_console: Any) -> int:
        """`audit-view`: the liability at (D, K) from the events topic alone, compared with
        the core's and the live projection's (exit status 1 on any difference)."""
        self.require(principal, Capability.verify, "run the audit view")
        return view(self.ledger, as_of, known_at, kafka, home, output=output,
                    console=console, err_console=err_console)

    def run_pipeline(self, principal: Principal, pipeline: PipelineWorker, console: Any,
                     plan: Any, bootstrap: str, kafka: KafkaSettings, *, feed: int,
                     as_of: date, seed: int) -> Any:
        """The demo's ERP feed through Kafka (intake, relay, the liability projection) over
        this store; the pipeline's outcome."""
        self.require(principal, Capability.users, "run the demo pipeline")
        return pipeline(console, self.ledger, plan, bootstrap, kafka, feed=feed, as_of=as_of,
                        seed=seed)


def _numbered_rows(lines: Iterable[bytes | str],
                   on_progress: Callable[[int], None] | None) -> Iterator[MappedRow]:
    """The lines of `apply` as the rows `import_rows` takes: numbered from 1 (blank lines
    counted, not applied), each parsed as `Ledger.apply_lines` parses it."""
    read = 0
    for number, line in enumerate(lines, start=1):
        read += len(line) + 1
        if on_progress is not None and (number % 4096 == 0):
            on_progress(read)
            read = 0
        if not line.strip():
            continue
        command, problem = parse_applied_line(line)
        yield MappedRow(number, line.encode("utf-8", "surrogatepass")
                        if isinstance(line, str) else line, command, problem)
    if on_progress is not None and read:
        on_progress(read)


def _parse(line: bytes) -> tuple[c.Command | None, Rejection | None]:
    if b"\x00" in line:
        # never JSON (a NUL in a string is written \u0000), and PostgreSQL's text columns
        # cannot keep it with the rejection: refused here, before the store sees it
        return None, InvalidCommand("", "not valid JSON: the line holds a NUL byte")
    try:
        return c.parse_line(line), None
    except InvalidCommand as problem:
        return None, problem


def _kept(line: bytes) -> bytes:
    """The text kept with a rejection: a NUL byte shown as `\\u0000`."""
    return line.replace(b"\x00", b"\\u0000") if b"\x00" in line else line


def _without_recorded_at(line: bytes) -> bytes:
    """A proposal is recorded at its approval: any `recorded_at` it was sent with is dropped."""
    value = c.decode_line(line)
    if isinstance(value, dict) and "recorded_at" in value:
        value = {k: v for k, v in value.items() if k != "recorded_at"}
        return orjson.dumps(value, default=str)
    return line


def _proposal_dict(row: Any) -> dict[str, Any]:
    return {
        "proposal_id": row.proposal_id,
        "status": row.status,
        "command_type": row.command_type,
        "agreement_id": row.agreement_id,
        "customer_id": row.customer_id,
        "command": orjson.loads(row.command),
        "proposed_by": row.proposer,
        "proposed_role": row.proposer_role,
        "proposed_at": timestamp_text(from_us(row.proposed_us)),
        "what_if": orjson.loads(row.what_if),
        "decided_by": row.decided_by,
        "decided_at": None if row.decided_us is None
        else timestamp_text(from_us(row.decided_us)),
        "reason": row.reason,
    }


#: The statuses of a claim in the register (ledger.projections.read_models.ClaimsModel).
CLAIM_STATUSES = ("submitted", "approved", "rejected", "settled")


def _claim_row(customer_id: str, events: Sequence[tuple[str, Any]]) -> ClaimRow:
    """One claim's register row folded from its events, as the claims projection keeps it."""
    from ledger.events.claims import ClaimApproved, ClaimRejected, ClaimSettled, ClaimSubmitted

    first_id, first = events[0]
    assert isinstance(first, ClaimSubmitted), type(first).__name__
    row: dict[str, Any] = {
        "claim_id": first.claim_id, "agreement_id": first.agreement_id,
        "customer_id": customer_id, "status": "submitted", "claimed": first.amount,
        "approved": None, "paid": Decimal(0), "submitted_on": first.submitted_on,
        "approved_on": None, "rejected_on": None, "paid_on": None, "reason": None,
        "payment_ref": None, "submitted_event": first_id, "approved_event": None,
        "rejected_event": None, "settled_events": (),
    }
    for event_id, event in events[1:]:
        if isinstance(event, ClaimApproved):
            row.update(status="approved", approved=event.approved_amount,
                       approved_on=event.approved_on, approved_event=event_id)
        elif isinstance(event, ClaimRejected):
            row.update(status="rejected", rejected_on=event.rejected_on, reason=event.reason,
                       rejected_event=event_id)
        elif isinstance(event, ClaimSettled):
            row.update(status="settled", paid=EXACT.add(row["paid"], event.paid_amount),
                       paid_on=event.paid_on, payment_ref=event.payment_ref,
                       settled_events=(*row["settled_events"], event_id))
    return ClaimRow(**row)
