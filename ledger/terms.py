"""Agreement terms, amendments laid over them, and the rules that make terms valid.

Terms in force at a valid date D are the creation terms with every amendment whose
`effective_from` ≤ D laid over them in the order they were recorded (contract 2.1).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal
from typing import Any

from ledger.errors import RuleViolation
from ledger.rules import Tier

#: The fields an amendment may change (contract section 1, `amend_agreement`), plus
#: `forecast_basis`, which section 2.4 calls "the creation (or amended) forecast_basis".
AMENDABLE_FIELDS = (
    "tiers",
    "cap",
    "products",
    "period_end",
    "basis",
    "tier_method",
    "rate_kind",
    "accrual_method",
    "forecast_basis",
)


@dataclass(frozen=True, slots=True)
class Terms:
    agreement_id: str
    #: exactly one of customer_id (a customer's own agreement) and group_id (contract 4)
    customer_id: str | None
    currency: str
    period_start: date
    period_end: date
    basis: str
    tier_method: str
    rate_kind: str
    tiers: tuple[Tier, ...]
    products: frozenset[str] | None = None
    cap: Decimal | None = None
    accrual_method: str = "earned"
    forecast_basis: Decimal | None = None
    group_id: str | None = None
    program_id: str | None = None
    #: Where each term came from: field name -> id of the event that set it last.
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)

    def covers(self, product_id: str) -> bool:
        return self.products is None or product_id in self.products

    def overlay(self, changes: Mapping[str, Any], source: str = "") -> Terms:
        """These terms with an amendment's changes laid over them."""
        unknown = set(changes) - set(AMENDABLE_FIELDS)
        assert not unknown, f"not amendable: {sorted(unknown)}"
        values = dict(changes)
        if "tiers" in values:
            values["tiers"] = tuple(values["tiers"])
        if "products" in values and values["products"] is not None:
            values["products"] = frozenset(values["products"])
        sources = dict(self.sources)
        for name in values:
            sources[name] = source
        return replace(self, **values, sources=sources)


#: The fields of a created agreement's terms (contract section 1, `create_agreement`).
TERM_FIELDS = ("agreement_id", "customer_id", "currency", "period_start", "period_end", "basis",
               "tier_method", "rate_kind", "tiers", "products", "cap", "accrual_method",
               "forecast_basis", "group_id", "program_id")


def term_value(name: str, raw: Any) -> Any:
    """One term as `Terms` holds it, from a command's field, an event's attribute or its stored
    JSON text alike: tiers as `Tier`s, products as a frozenset, dates and decimals typed."""
    if raw is None:
        return None
    if name == "tiers":
        return tuple(_tier(t) for t in raw)
    if name == "products":
        return frozenset(raw)
    if name in ("period_start", "period_end"):
        return raw if isinstance(raw, date) else date.fromisoformat(raw)
    if name in ("cap", "forecast_basis"):
        return raw if isinstance(raw, Decimal) else Decimal(raw)
    return raw


def _tier(tier: Any) -> Tier:
    if isinstance(tier, Tier):
        return tier
    if isinstance(tier, Mapping):  # stored JSON: {"from": "1000", "rate": "0.44"}
        return Tier(Decimal(tier["from"]), Decimal(tier["rate"]))
    return Tier(Decimal(tier.threshold), Decimal(tier.rate))  # the command's or event's row


def terms_of(values: Mapping[str, Any], **extra: Any) -> Terms:
    """The one place agreement terms are decoded: from a `create_agreement` command, the
    aggregate's creation, or the projected JSON record (a field missing there, as in what a v1
    store projected, takes its default)."""
    fields = {name: term_value(name, values[name]) for name in TERM_FIELDS if name in values}
    if fields.get("accrual_method") is None:
        fields.pop("accrual_method", None)
    return Terms(**fields, **extra)


def changes_of(changed: Iterable[str], values: Mapping[str, Any]) -> dict[str, Any]:
    """An amendment's changes, decoded as `terms_of` decodes the created terms."""
    return {name: term_value(name, values[name]) for name in changed}


def check_terms(terms: Terms) -> None:
    """Raise `RuleViolation` naming the rule when the terms are not valid as a whole.

    Field-level rules (tier order, positive cap, …) are checked when a command is read; these
    are the rules that tie fields together and so can be broken by an amendment.
    """
    if terms.period_start > terms.period_end:
        raise RuleViolation(
            "period_end",
            f"period_start ({terms.period_start}) must not be after period_end "
            f"({terms.period_end})",
        )
    if terms.tier_method == "incremental" and (terms.basis, terms.rate_kind) not in (
        ("quantity", "per_unit"),
        ("amount", "percent"),
    ):
        raise RuleViolation(
            "tier_method",
            "incremental tiers need basis/rate_kind quantity/per_unit or amount/percent, "
            f"got {terms.basis}/{terms.rate_kind}",
        )
    check_tiers(terms.tiers)
    if terms.cap is not None and terms.cap <= 0:
        raise RuleViolation("cap", f"cap must be greater than 0, got {terms.cap}")
    if terms.forecast_basis is not None and terms.forecast_basis <= 0:
        raise RuleViolation(
            "forecast_basis", f"forecast_basis must be greater than 0, got {terms.forecast_basis}"
        )


#: Contract 5: the highest rate a `percent` tier may have (1 is 100 %).
PERCENT_RATE_MAX = Decimal(1)


def check_new_terms(terms: Terms) -> None:
    """The rules for terms a command sets now: `check_terms`, and contract 5's percent rule
    (not applied to agreements recorded before it, which must still load)."""
    check_terms(terms)
    if terms.rate_kind == "percent":
        for index, tier in enumerate(terms.tiers):
            if tier.rate > PERCENT_RATE_MAX:
                raise RuleViolation(
                    f"tiers[{index}].rate",
                    f"rate {tier.rate} is {tier.rate * 100:f} %; with rate_kind percent a rate "
                    'is a fraction of the sales amount ("0.05" means 5 %) and may be at most '
                    '1 (100 %); write "0.05" for 5 %',
                )


def check_tiers(tiers: Sequence[Tier]) -> None:
    if not tiers:
        raise RuleViolation("tiers", "tiers must list at least one tier")
    previous: Decimal | None = None
    for index, tier in enumerate(tiers):
        if tier.threshold < 0:
            raise RuleViolation(f"tiers[{index}].from", f"must be ≥ 0, got {tier.threshold}")
        if tier.rate < 0:
            raise RuleViolation(f"tiers[{index}].rate", f"must be ≥ 0, got {tier.rate}")
        if previous is not None and tier.threshold <= previous:
            raise RuleViolation(
                f"tiers[{index}].from",
                f"tier thresholds must be strictly increasing: {tier.threshold} follows "
                f"{previous}",
            )
        previous = tier.threshold


@dataclass(frozen=True, slots=True)
class TermsChange:
    """One recorded change of an agreement's terms, in recording order."""

    seq: int  # recording order (the command's position in the ledger)
    effective_from: date
    changes: Mapping[str, Any]
    source: str  # id of the event that made the change


def terms_in_force(created: Terms, amendments: Iterable[TermsChange], as_of: date) -> Terms:
    """Contract 2.1: the creation terms with every amendment effective by `as_of` laid over
    them in the order they were recorded."""
    terms = created
    for amendment in sorted(amendments, key=lambda a: a.seq):
        if amendment.effective_from <= as_of:
            terms = terms.overlay(amendment.changes, amendment.source)
    return terms


def check_amendment(created: Terms, recorded: Sequence[TermsChange], new: TermsChange) -> None:
    """Reject an amendment that would leave the terms invalid at any valid date.

    The new amendment is recorded last, so it is laid last at every date from its
    `effective_from` on; the terms can only change at its date and at the dates of
    amendments effective later, so checking those dates checks them all.
    """
    dates = {new.effective_from} | {
        a.effective_from for a in recorded if a.effective_from > new.effective_from
    }
    for when in sorted(dates):
        check_new_terms(terms_in_force(created, [*recorded, new], when))
