"""A deliberately naive model of the ledger contract (shared/spec/ledger-contract.md, v2:
sections 1, 2, 4 and 5): the oracle of the stateful test (tests/test_stateful.py).

It is written from the contract text alone and imports nothing from the `ledger` package. It
keeps the accepted commands in a list, decides whether a command is accepted by scanning that
list, and computes a liability by brute force over the commands recorded at or before K.
Figures are exact fractions up to the one half-up rounding to cents. Slow on purpose: it is
meant to be read against the contract line by line.

Commands come in as the test sends them: a dict of JSON values in which a decimal is a `str`
(a JSON string) or a `Decimal` (a JSON number). Validation covers what the stateful test
generates, not every malformed input a user could send.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from fractions import Fraction
from typing import Any

ACCEPTED = "accepted"
DUPLICATE = "duplicate"
REJECTED = "rejected"

REQUIRED: dict[str, set[str]] = {
    # v2: exactly one of customer_id and group_id (checked in `parse`)
    "create_agreement": {
        "agreement_id", "currency", "period_start", "period_end", "basis",
        "tier_method", "rate_kind", "tiers",
    },
    "amend_agreement": {"agreement_id", "effective_from"},
    "revise_forecast": {"agreement_id", "forecast_basis", "effective_from"},
    "record_sale": {
        "sale_id", "customer_id", "product_id", "quantity", "amount", "currency", "invoice_date",
    },
    "reverse_sale": {"sale_id", "reversed_on"},
    "submit_claim": {"claim_id", "agreement_id", "amount", "submitted_on"},
    "approve_claim": {"claim_id", "approved_on"},
    "reject_claim": {"claim_id", "rejected_on", "reason"},
    "settle_claim": {"claim_id", "paid_on", "payment_ref"},
    "write_off": {"agreement_id", "amount", "effective_date", "reason"},
    "reverse_write_off": {"write_off_id", "reversed_on", "reason"},
    "create_group": {"group_id"},
    "join_group": {"group_id", "customer_id", "effective_from"},
    "leave_group": {"group_id", "customer_id", "effective_from"},
}

#: The terms an amendment may change. The table of section 1 does not list `forecast_basis`,
#: but section 2.4 speaks of "the creation (or amended) forecast_basis", so it is amendable.
AMENDABLE = {
    "tiers", "cap", "products", "period_end", "basis", "tier_method", "rate_kind",
    "accrual_method", "forecast_basis",
}

OPTIONAL: dict[str, set[str]] = {
    "create_agreement": {"products", "cap", "accrual_method", "forecast_basis", "customer_id",
                         "group_id", "program_id"},
    "write_off": {"write_off_id"},
    "create_group": {"name"},
    "amend_agreement": AMENDABLE,
    "approve_claim": {"approved_amount"},
    "settle_claim": {"paid_amount"},
}

DATES = {
    "period_start", "period_end", "effective_from", "invoice_date", "reversed_on",
    "submitted_on", "approved_on", "rejected_on", "paid_on", "effective_date",
}
#: v2, section 5: the highest percent rate (100 %).
PERCENT_MAX = Fraction(1)
DECIMALS = {"quantity", "amount", "cap", "forecast_basis", "approved_amount", "paid_amount"}
#: "cap, forecast_basis, amounts of claims and write-offs: > 0 where given."
POSITIVE = {"cap", "forecast_basis", "approved_amount", "paid_amount"}
POSITIVE_AMOUNT = {"submit_claim", "write_off"}
CHOICES = {
    "basis": {"quantity", "amount"},
    "rate_kind": {"per_unit", "percent"},
    "tier_method": {"retroactive", "incremental"},
    "accrual_method": {"earned", "forecast"},
}
INCREMENTAL_PAIRS = {("quantity", "per_unit"), ("amount", "percent")}


class Rejected(Exception):
    """The contract rejects the command; the message says why (for failure reports)."""


def _decimal(name: str, value: Any) -> Fraction:
    if isinstance(value, bool) or not isinstance(value, str | Decimal | int):
        raise Rejected(f"{name}: not a decimal: {value!r}")
    number = Decimal(value)
    if not number.is_finite():
        raise Rejected(f"{name}: not a finite decimal")
    return Fraction(number)


def parse(raw: dict[str, Any]) -> dict[str, Any]:
    """The command with dates, timestamps and decimals read; only the fields it carries."""
    kind = raw.get("type")
    if kind not in REQUIRED:
        raise Rejected(f"type: unknown {kind!r}")
    fields = set(raw) - {"type", "recorded_at"}
    if missing := REQUIRED[kind] - fields:
        raise Rejected(f"missing {sorted(missing)}")
    if unknown := fields - REQUIRED[kind] - OPTIONAL.get(kind, set()):
        raise Rejected(f"unknown {sorted(unknown)}")
    cmd: dict[str, Any] = {"type": kind}
    for name, value in raw.items():
        if name == "type":
            continue
        if value is None:
            # Only an amendment's cap may be null ("null removes it").
            if not (kind == "amend_agreement" and name == "cap"):
                raise Rejected(f"{name}: null")
            cmd[name] = None
        elif name == "recorded_at":
            moment = datetime.fromisoformat(value)
            if moment.tzinfo is None:
                raise Rejected("recorded_at: no offset")
            cmd[name] = moment
        elif name in DATES:
            if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
                raise Rejected(f"{name}: not YYYY-MM-DD")
            cmd[name] = date.fromisoformat(value)
        elif name in DECIMALS:
            cmd[name] = _decimal(name, value)
            positive = name in POSITIVE or (name == "amount" and kind in POSITIVE_AMOUNT)
            if positive and cmd[name] <= 0:
                raise Rejected(f"{name}: must be > 0")
        elif name == "currency":
            if not re.fullmatch(r"[A-Z]{3}", value):
                raise Rejected("currency: three capital letters")
            cmd[name] = value
        elif name in CHOICES:
            if value not in CHOICES[name]:
                raise Rejected(f"{name}: {value!r}")
            cmd[name] = value
        elif name == "tiers":
            cmd[name] = _tiers(value)
        elif name == "products":
            cmd[name] = frozenset(value)
        else:
            cmd[name] = value
    if kind == "record_sale" and cmd["quantity"] * cmd["amount"] < 0:
        raise Rejected("quantity and amount carry different signs")
    if kind == "create_agreement" and ("customer_id" in cmd) == ("group_id" in cmd):
        raise Rejected("exactly one of customer_id and group_id")
    return cmd


def _tiers(value: list[dict[str, Any]]) -> list[tuple[Fraction, Fraction]]:
    """`[{"from": d, "rate": r}]`, non-empty, `from` ≥ 0 strictly increasing, `rate` ≥ 0."""
    if not value:
        raise Rejected("tiers: empty")
    tiers: list[tuple[Fraction, Fraction]] = []
    for tier in value:
        if set(tier) != {"from", "rate"}:
            raise Rejected(f"tiers: fields {sorted(tier)}")
        start, rate = _decimal("from", tier["from"]), _decimal("rate", tier["rate"])
        if start < 0 or rate < 0 or (tiers and start <= tiers[-1][0]):
            raise Rejected("tiers: from ≥ 0 strictly increasing, rate ≥ 0")
        tiers.append((start, rate))
    return tiers


def check_terms(terms: dict[str, Any]) -> None:
    """The rules that tie terms together (field-level rules are checked by `parse`)."""
    if terms["period_start"] > terms["period_end"]:
        raise Rejected("period_start > period_end")
    pair = (terms["basis"], terms["rate_kind"])
    if terms["tier_method"] == "incremental" and pair not in INCREMENTAL_PAIRS:
        raise Rejected(f"incremental with {pair}")
    if terms["rate_kind"] == "percent" and any(r > PERCENT_MAX for _, r in terms["tiers"]):
        raise Rejected("a percent rate above 1 (100 %)")


def rate(tiers: list[tuple[Fraction, Fraction]], x: Fraction) -> Fraction:
    """Retroactive: the rate of the highest tier with `from` ≤ X (0 when none)."""
    return next((r for start, r in reversed(tiers) if start <= x), Fraction(0))


def inc(tiers: list[tuple[Fraction, Fraction]], x: Fraction) -> Fraction:
    """Incremental: sum of rate_i × max(0, min(X, from_{i+1}) − from_i), last tier unbounded."""
    total = Fraction(0)
    for i, (start, r) in enumerate(tiers):
        top = x if i + 1 == len(tiers) else min(x, tiers[i + 1][0])
        total += r * max(Fraction(0), top - start)
    return total


def round_cents(value: Fraction) -> Fraction:
    """Half up (away from zero at the half cent), to 2 places."""
    sign = -1 if value < 0 else 1
    cents = math.floor(abs(value) * 100 + Fraction(1, 2))
    return Fraction(sign * cents, 100)


def money(value: Fraction) -> str:
    """Exactly two decimals, e.g. "5750.00"."""
    assert (value * 100).denominator == 1, f"{value} is not a whole number of cents"
    cents = int(value * 100)
    return f"{'-' if cents < 0 else ''}{abs(cents) // 100}.{abs(cents) % 100:02d}"


@dataclass(frozen=True)
class Entry:
    """An accepted command (duplicates are not entries: they change nothing)."""

    recorded_at: datetime
    cmd: dict[str, Any]


class ContractModel:
    def __init__(self, clock: datetime) -> None:
        self.clock = clock  # the ledger's clock: recorded_at may not be later
        self.entries: list[Entry] = []  # in the order applied
        self.watermark: datetime | None = None  # latest recorded_at accepted (dups included)

    # Section 1: which commands are accepted --------------------------------------------------

    def apply(self, raw: dict[str, Any]) -> tuple[str, str]:
        """(accepted | duplicate | rejected, why it was rejected)."""
        try:
            cmd = parse(raw)
            recorded_at = self._recorded_at(cmd)
            outcome = getattr(self, "_" + cmd["type"])(cmd)
        except Rejected as why:
            return REJECTED, str(why)
        if outcome == ACCEPTED:
            self.entries.append(Entry(recorded_at, cmd))
        if self.watermark is None or recorded_at > self.watermark:
            self.watermark = recorded_at
        return outcome, ""

    def _recorded_at(self, cmd: dict[str, Any]) -> datetime:
        given: datetime | None = cmd.get("recorded_at")
        if given is None:
            return self.clock
        if given > self.clock:
            raise Rejected("recorded_at in the future")
        if self.watermark is not None and given < self.watermark:
            raise Rejected("recorded_at before an accepted command's")
        return given

    def _all(self, kind: str, **match: Any) -> list[dict[str, Any]]:
        return [
            e.cmd for e in self.entries
            if e.cmd["type"] == kind and all(e.cmd.get(k) == v for k, v in match.items())
        ]

    def agreement(self, agreement_id: str) -> dict[str, Any] | None:
        found = self._all("create_agreement", agreement_id=agreement_id)
        return found[0] if found else None

    def sale(self, sale_id: str) -> dict[str, Any] | None:
        found = self._all("record_sale", sale_id=sale_id)
        return found[0] if found else None

    def is_reversed(self, sale_id: str) -> bool:
        return bool(self._all("reverse_sale", sale_id=sale_id))

    def claim(self, claim_id: str) -> dict[str, Any] | None:
        found = self._all("submit_claim", claim_id=claim_id)
        return found[0] if found else None

    def claim_status(self, claim_id: str) -> str | None:
        claim = self.claim(claim_id)
        if claim is None:
            return None
        if self._all("reject_claim", claim_id=claim_id):
            return "rejected"
        approvals = self._all("approve_claim", claim_id=claim_id)
        if not approvals:
            return "submitted"
        return "settled" if self.unpaid(claim_id) == 0 else "approved"

    def unpaid(self, claim_id: str) -> Fraction:
        (approval,) = self._all("approve_claim", claim_id=claim_id)
        paid = sum((s["paid_amount"] for s in self._all("settle_claim", claim_id=claim_id)),
                   Fraction(0))
        return approval["approved_amount"] - paid

    def available(self, claim_id: str, approved_on: date) -> Fraction:
        """Earned rebate at `approved_on` over everything held, minus the approved amounts of
        the agreement's other approved claims."""
        claim = self.claim(claim_id)
        assert claim is not None
        created = self.agreement(claim["agreement_id"])
        assert created is not None
        everything = [e.cmd for e in self.entries]
        _, earned = accrual(created, everything, approved_on, method="earned")
        others = sum(
            (a["approved_amount"] for a in self._all("approve_claim")
             if a["claim_id"] != claim_id
             and self.claim(a["claim_id"])["agreement_id"] == claim["agreement_id"]),  # type: ignore[index]
            Fraction(0),
        )
        return earned - others

    def _create_agreement(self, cmd: dict[str, Any]) -> str:
        if self.agreement(cmd["agreement_id"]) is not None:
            raise Rejected("agreement_id not unique")
        if "group_id" in cmd and not self._all("create_group", group_id=cmd["group_id"]):
            raise Rejected("no such group")
        check_terms(cmd)
        return ACCEPTED

    # Section 4: groups ---------------------------------------------------------------------

    def _create_group(self, cmd: dict[str, Any]) -> str:
        if self._all("create_group", group_id=cmd["group_id"]):
            raise Rejected("group_id not unique")
        return ACCEPTED

    def _join_group(self, cmd: dict[str, Any]) -> str:
        if not self._all("create_group", group_id=cmd["group_id"]):
            raise Rejected("no such group")
        return ACCEPTED

    def _leave_group(self, cmd: dict[str, Any]) -> str:
        if not self._all("create_group", group_id=cmd["group_id"]):
            raise Rejected("no such group")
        if not self._all("join_group", group_id=cmd["group_id"], customer_id=cmd["customer_id"]):
            raise Rejected("no earlier join of that customer to that group")
        return ACCEPTED

    def _amend_agreement(self, cmd: dict[str, Any]) -> str:
        created = self.agreement(cmd["agreement_id"])
        if created is None:
            raise Rejected("no such agreement")
        if not set(cmd) & AMENDABLE:
            raise Rejected("amendment changes nothing")
        # Terms only change at amendment dates: check them at each, with this one laid last.
        history = [e.cmd for e in self.entries] + [cmd]
        for amendment in self._all("amend_agreement", agreement_id=cmd["agreement_id"]) + [cmd]:
            check_terms(terms_at(created, history, amendment["effective_from"]))
        return ACCEPTED

    def _revise_forecast(self, cmd: dict[str, Any]) -> str:
        if self.agreement(cmd["agreement_id"]) is None:
            raise Rejected("no such agreement")
        return ACCEPTED

    def _record_sale(self, cmd: dict[str, Any]) -> str:
        known = self.sale(cmd["sale_id"])
        if known is None:
            return ACCEPTED
        same = ("customer_id", "product_id", "quantity", "amount", "currency", "invoice_date")
        if all(known[f] == cmd[f] for f in same):
            return DUPLICATE
        raise Rejected("sale_id recorded with other fields")

    def _reverse_sale(self, cmd: dict[str, Any]) -> str:
        sale = self.sale(cmd["sale_id"])
        if sale is None:
            raise Rejected("no such sale")
        if self.is_reversed(cmd["sale_id"]):
            raise Rejected("already reversed")
        if cmd["reversed_on"] < sale["invoice_date"]:
            raise Rejected("reversed_on before invoice_date")
        return ACCEPTED

    def _submit_claim(self, cmd: dict[str, Any]) -> str:
        if self.agreement(cmd["agreement_id"]) is None:
            raise Rejected("no such agreement")
        if self.claim(cmd["claim_id"]) is not None:
            raise Rejected("claim_id not unique")
        return ACCEPTED

    def _approve_claim(self, cmd: dict[str, Any]) -> str:
        if self.claim_status(cmd["claim_id"]) != "submitted":
            raise Rejected(f"claim is {self.claim_status(cmd['claim_id'])}")
        claim = self.claim(cmd["claim_id"])
        assert claim is not None
        cmd.setdefault("approved_amount", claim["amount"])
        if cmd["approved_amount"] > claim["amount"]:
            raise Rejected("approved more than claimed")
        if cmd["approved_amount"] > self.available(cmd["claim_id"], cmd["approved_on"]):
            raise Rejected("approved more than available")
        return ACCEPTED

    def _reject_claim(self, cmd: dict[str, Any]) -> str:
        if self.claim_status(cmd["claim_id"]) != "submitted":
            raise Rejected(f"claim is {self.claim_status(cmd['claim_id'])}")
        return ACCEPTED

    def _settle_claim(self, cmd: dict[str, Any]) -> str:
        # v2, section 5: the same payment_ref on the claim again
        for known in self._all("settle_claim", claim_id=cmd["claim_id"],
                               payment_ref=cmd["payment_ref"]):
            if known["paid_on"] == cmd["paid_on"] and cmd.get(
                    "paid_amount", known["paid_amount"]) == known["paid_amount"]:
                return DUPLICATE
            raise Rejected("payment_ref settled with other fields")
        if self.claim_status(cmd["claim_id"]) != "approved":
            raise Rejected(f"claim is {self.claim_status(cmd['claim_id'])}")
        unpaid = self.unpaid(cmd["claim_id"])
        cmd.setdefault("paid_amount", unpaid)
        if cmd["paid_amount"] > unpaid:
            raise Rejected("paid more than approved")
        return ACCEPTED

    def write_off_by_id(self, write_off_id: str) -> dict[str, Any] | None:
        found = self._all("write_off", write_off_id=write_off_id) if write_off_id else []
        return found[0] if found else None

    def _write_off(self, cmd: dict[str, Any]) -> str:
        known = self.write_off_by_id(cmd.get("write_off_id", ""))
        if known is not None:  # v2, section 5
            same = ("agreement_id", "amount", "effective_date", "reason")
            if all(known[f] == cmd[f] for f in same):
                return DUPLICATE
            raise Rejected("write_off_id recorded with other fields")
        if self.agreement(cmd["agreement_id"]) is None:
            raise Rejected("no such agreement")
        row = self.row(cmd["agreement_id"], cmd["effective_date"])
        if cmd["amount"] > row["liability"]:
            raise Rejected("written off more than the liability")
        return ACCEPTED

    def _reverse_write_off(self, cmd: dict[str, Any]) -> str:
        known = self.write_off_by_id(cmd["write_off_id"])
        if known is None:
            raise Rejected("no such write-off")
        if self._all("reverse_write_off", write_off_id=cmd["write_off_id"]):
            raise Rejected("already reversed")
        if cmd["reversed_on"] < known["effective_date"]:
            raise Rejected("reversed_on before the write-off's effective_date")
        return ACCEPTED

    # Section 2: liability at a point in time -----------------------------------------------

    def known(self, known_at: datetime | None) -> list[dict[str, Any]]:
        return [e.cmd for e in self.entries if known_at is None or e.recorded_at <= known_at]

    def row(
        self, agreement_id: str, as_of: date, known_at: datetime | None = None
    ) -> dict[str, Any]:
        """One agreement's row with exact figures (money already rounded to cents)."""
        known = self.known(known_at)
        created = next(
            c for c in known
            if c["type"] == "create_agreement" and c["agreement_id"] == agreement_id
        )
        basis, accrued = accrual(created, known, as_of)
        claims = {
            c["claim_id"] for c in known
            if c["type"] == "submit_claim" and c["agreement_id"] == agreement_id
        }

        def total(kind: str, day: str, amount: str) -> Fraction:
            return sum(
                (c[amount] for c in known if c["type"] == kind and c[day] <= as_of
                 and (c.get("claim_id") in claims or c.get("agreement_id") == agreement_id)),
                Fraction(0),
            )

        paid = total("settle_claim", "paid_on", "paid_amount")
        written_off = total("write_off", "effective_date", "amount")
        # v2, section 5: a reversed write-off no longer counts from reversed_on on
        for reversal in known:
            if reversal["type"] == "reverse_write_off" and reversal["reversed_on"] <= as_of:
                original = self.write_off_by_id(reversal["write_off_id"])
                assert original is not None
                if original["agreement_id"] == agreement_id:
                    written_off -= original["amount"]
        return {
            "agreement_id": agreement_id,
            "customer_id": created.get("customer_id"),
            "group_id": created.get("group_id"),
            "program_id": created.get("program_id"),
            "currency": created["currency"],
            "basis": basis,
            "accrued": accrued,
            "approved": total("approve_claim", "approved_on", "approved_amount"),
            "paid": paid,
            "written_off": written_off,
            "liability": accrued - paid - written_off,
        }

    def liability(
        self, as_of: date, known_at: datetime | None = None, customer_id: str | None = None
    ) -> list[dict[str, Any]]:
        """The contract's rows, money as two-decimal strings, basis as an exact Fraction;
        `customer_id`: its own agreements and those of its groups at D, as known at K."""
        known = self.known(known_at)
        ids = sorted(
            c["agreement_id"] for c in known if c["type"] == "create_agreement"
            and (customer_id is None or c.get("customer_id") == customer_id
                 or ("group_id" in c and is_member(known, c["group_id"], customer_id, as_of)))
        )
        rows = []
        for agreement_id in ids:
            row = self.row(agreement_id, as_of, known_at)
            for name in ("accrued", "approved", "paid", "written_off", "liability"):
                row[name] = money(row[name])
            rows.append(row)
        return rows


def is_member(known: list[dict[str, Any]], group_id: str, customer_id: str, on: date) -> bool:
    """Section 4: among the joins and leaves of (G, C) in `known` (recorded at or before K, in
    recorded order) with effective_from <= X, the one recorded last is a join."""
    last = None
    for c in known:
        if (c["type"] in ("join_group", "leave_group") and c["group_id"] == group_id
                and c["customer_id"] == customer_id and c["effective_from"] <= on):
            last = c["type"]
    return last == "join_group"


def terms_at(created: dict[str, Any], known: list[dict[str, Any]], as_of: date) -> dict[str, Any]:
    """2.1: creation terms with every amendment effective by D laid over them in order."""
    terms = dict(created)
    for c in known:
        if (c["type"] == "amend_agreement" and c["agreement_id"] == created["agreement_id"]
                and c["effective_from"] <= as_of):
            terms.update({k: v for k, v in c.items() if k in AMENDABLE})
    return terms


def accrual(
    created: dict[str, Any], known: list[dict[str, Any]], as_of: date, method: str | None = None
) -> tuple[Fraction, Fraction]:
    """2.1–2.7: (B, accrued rounded to cents) at D over the `known` commands."""
    terms = terms_at(created, known, as_of)
    reversed_ids = {
        c["sale_id"] for c in known if c["type"] == "reverse_sale" and c["reversed_on"] <= as_of
    }
    products = terms.get("products")
    eligible = [
        s for s in known
        if s["type"] == "record_sale"
        and s["invoice_date"] <= as_of
        and terms["period_start"] <= s["invoice_date"] <= terms["period_end"]
        and (s["customer_id"] == terms["customer_id"] if "customer_id" in terms
             else is_member(known, terms["group_id"], s["customer_id"], s["invoice_date"]))
        and s["currency"] == terms["currency"]
        and (products is None or s["product_id"] in products)
        and s["sale_id"] not in reversed_ids
    ]
    q = sum((s["quantity"] for s in eligible), Fraction(0))
    a = sum((s["amount"] for s in eligible), Fraction(0))
    b = q if terms["basis"] == "quantity" else a
    m = q if terms["rate_kind"] == "per_unit" else a
    revisions = [
        c for c in known
        if c["type"] == "revise_forecast" and c["agreement_id"] == created["agreement_id"]
        and c["effective_from"] <= as_of
    ]
    f = revisions[-1]["forecast_basis"] if revisions else terms.get("forecast_basis")
    tiers = terms["tiers"]
    retroactive = terms["tier_method"] == "retroactive"
    method = method or terms.get("accrual_method", "earned")
    if b <= 0:
        exact = Fraction(0)
    elif method == "earned":
        exact = rate(tiers, b) * m if retroactive else inc(tiers, b)
    else:
        e = b if f is None else max(b, f)
        if retroactive:
            exact = rate(tiers, e) * m
        else:
            exact = Fraction(0) if e == 0 else inc(tiers, e) * b / e
    if terms.get("cap") is not None:
        exact = min(exact, terms["cap"])
    return b, round_cents(exact)
