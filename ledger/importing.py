"""Importing the files finance has: CSV exports and Excel workbooks, through a mapping.

A mapping (TOML, docs/importing.md) says which column feeds which field of which contract
command, the constants, how numbers and dates are written, how a row's command is chosen, and
how tier tables are spread (over columns `tier1_from`, `tier1_rate`, ... or over consecutive
rows of one agreement). `rows_of` turns a file into `MappedRow`s, in file order, streaming: each
is a parsed contract command, or a rejection naming its row, column and value. The application
service applies them as `apply` applies lines (`LedgerService.import_rows`), so imported rows
meet exactly the same rules and every rejection is kept.

No CLI and no SQL here: this reads files and builds commands.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import tomllib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from ledger import commands as c
from ledger.errors import InputUnreadable, InvalidCommand, LedgerError, Rejection

#: How much of a CSV file is read ahead to choose its delimiter and check its encoding.
SNIFF_BYTES = 1 << 16
#: Delimiters a CSV file may be sniffed to have (`delimiter` in the mapping takes any one).
SNIFFED_DELIMITERS = ",;\t|"
#: Most tiers a spread over columns may hold (the contract's bound).
TIERS_MAX = c.TIERS_MAX
#: Most rows one command may be spread over (tiers in rows): the contract's bound on tiers.
GROUP_ROWS_MAX = c.TIERS_MAX
#: Longest cell text shown in a rejection.
SHOWN_CHARS_MAX = 80
#: Excel's serial day 0 (serials above 60 count from here; 60 is Excel's 29 Feb 1900).
EXCEL_EPOCH = date(1899, 12, 30)
EXCEL_SERIAL_MIN, EXCEL_SERIAL_MAX = 61, 2_958_465

#: The ways of writing 1234.56 a mapping may name in [numbers] format: group, decimal mark.
NUMBER_FORMATS: dict[str, tuple[str, str]] = {
    "1234.56": ("", "."),
    "1234,56": ("", ","),
    "1,234.56": (",", "."),
    "1.234,56": (".", ","),
    "1 234,56": (" ", ","),
    "1 234.56": (" ", "."),
    "1'234.56": ("'", "."),
}
#: Spaces that group digits in exports (no-break and narrow no-break: French, Swiss).
_SPACES = {"\u00a0": " ", "\u202f": " ", "\u2009": " "}


class MappingError(LedgerError):
    """The mapping file cannot be used: names the key and what to write instead."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}" if key else message)
        self.key = key


class ImportUnreadable(InputUnreadable):
    """The file as a whole cannot be read with this mapping (nothing is applied)."""


# Reading cells -------------------------------------------------------------------------------


class CellError(ValueError):
    """A cell that cannot become the field's value; the text says why and what is expected."""


@dataclass(frozen=True)
class NumberFormat:
    """How a file writes numbers: the digit-group separator ("" for none) and the decimal mark.
    A minus sign before or after the number and parentheses mean negative; a trailing `%`
    divides by 100."""

    group: str = ""
    mark: str = "."

    @classmethod
    def named(cls, example: str, key: str = "numbers.format") -> NumberFormat:
        try:
            group, mark = NUMBER_FORMATS[example]
        except KeyError:
            raise MappingError(key, f"{example!r} is not a number format; write 1234.56 as the "
                               f"file does, one of {', '.join(NUMBER_FORMATS)}") from None
        return cls(group, mark)

    @property
    def example(self) -> str:
        return next(k for k, v in NUMBER_FORMATS.items() if v == (self.group, self.mark))

    def pattern(self) -> re.Pattern[str]:
        grouped = (rf"\d{{1,3}}(?:{re.escape(self.group)}\d{{3}})+|" if self.group else "")
        return re.compile(rf"(?:{grouped}\d+)(?:{re.escape(self.mark)}\d+)?")

    def parse(self, text: str, pattern: re.Pattern[str] | None = None) -> Decimal:
        """The exact decimal `text` writes (raises `CellError` naming the expected form)."""
        s = text.strip()
        for space, plain in _SPACES.items():
            s = s.replace(space, plain)
        negative = s.startswith("(") and s.endswith(")")
        if negative:
            s = s[1:-1].strip()
        if s.endswith("-") or s.startswith("-"):
            if negative or (s.endswith("-") and s.startswith("-")):
                raise CellError("has two negative signs; write one (a minus before or after "
                                "the number, or parentheses)")
            negative, s = True, (s[:-1].rstrip() if s.endswith("-") else s[1:].lstrip())
        elif s.startswith("+"):
            s = s[1:].lstrip()
        percent = s.endswith("%")
        if percent:
            s = s[:-1].rstrip()
        if not (pattern or self.pattern()).fullmatch(s):
            raise CellError(f"is not a number written as {self.example} (a minus sign before "
                            "or after it, or parentheses, for a negative one)")
        digits = s.replace(self.group, "") if self.group else s
        if self.mark != ".":
            digits = digits.replace(self.mark, ".")
        value = Decimal(digits)
        if percent:
            value = value.scaleb(-2)
        return -value if negative and value else value


@dataclass(frozen=True)
class DateFormat:
    """A date form named with DD, MM and YYYY (`DD.MM.YYYY`, `MM/DD/YYYY`, `YYYYMMDD`), or
    `excel`: a spreadsheet's serial day number."""

    name: str
    regex: re.Pattern[str] | None  # None: excel serial

    @classmethod
    def named(cls, name: str, key: str = "dates.formats") -> DateFormat:
        if name.lower() == "excel":
            return cls("excel", None)
        pieces = re.split(r"(YYYY|MM|DD)", name)
        tokens = pieces[1::2]
        if sorted(tokens) != ["DD", "MM", "YYYY"]:
            raise MappingError(key, f"{name!r} is not a date format; name the day, month and "
                               "year once each with DD, MM and YYYY (DD.MM.YYYY, MM/DD/YYYY, "
                               "YYYY-MM-DD, YYYYMMDD), or write \"excel\" for serial day "
                               "numbers")
        regex = ""
        for index, piece in enumerate(pieces):
            if index % 2 == 0:
                regex += re.escape(piece)
                continue
            # one or two digits where a separator bounds the number, else exactly two
            bounded = pieces[index - 1] != "" or index == 1
            bounded = bounded and (pieces[index + 1] != "" or index == len(pieces) - 2)
            group = {"YYYY": "y", "MM": "m", "DD": "d"}[piece]
            width = r"\d{4}" if piece == "YYYY" else (r"\d{1,2}" if bounded else r"\d{2}")
            regex += f"(?P<{group}>{width})"
        return cls(name, re.compile(regex))

    def parse(self, text: str) -> date | None:
        """The date `text` writes in this form, None when it is not in this form."""
        if self.regex is None:
            if not re.fullmatch(r"\d+(\.\d+)?", text):
                return None
            return excel_day(Decimal(text))
        found = self.regex.fullmatch(text)
        if found is None:
            return None
        try:
            return date(int(found["y"]), int(found["m"]), int(found["d"]))
        except ValueError:
            raise CellError(f"is not a day of the calendar (read as {self.name})") from None


def excel_day(serial: Decimal | float | int) -> date:
    """The day of an Excel serial number (the 1900 system; a fraction is a time of day)."""
    whole = int(serial)
    if not EXCEL_SERIAL_MIN <= whole <= EXCEL_SERIAL_MAX:
        raise CellError(f"is not an Excel serial day from {EXCEL_SERIAL_MIN} (1900-03-01) to "
                        f"{EXCEL_SERIAL_MAX} (9999-12-31)")
    return EXCEL_EPOCH + timedelta(days=whole)


def _shown(value: Any) -> str:
    text = value if isinstance(value, str) else str(value)
    text = text if len(text) <= SHOWN_CHARS_MAX else text[:SHOWN_CHARS_MAX - 3] + "..."
    return repr(text)


def _is_empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def cell_text(value: Any) -> str:
    """A cell as text for an id or a word: whole numbers without `.0` (a spreadsheet keeps
    customer numbers as numbers)."""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


# The mapping ---------------------------------------------------------------------------------

#: What kind of value each field of each contract command holds, from the command models.
def _field_kinds() -> dict[str, dict[str, tuple[str, bool]]]:
    kinds: dict[str, dict[str, tuple[str, bool]]] = {}
    for kind, model in c.COMMAND_TYPES.items():
        fields: dict[str, tuple[str, bool]] = {}
        for name, info in model.model_fields.items():
            if name == "type":
                continue
            text = str(info.annotation)
            if "TierIn" in text:
                what = "tiers"
            elif "list[" in text:
                what = "list"
            elif "decimal.Decimal" in text:
                what = "decimal"
            elif "AwareDatetime" in text:
                what = "timestamp"
            elif "datetime.date" in text:
                what = "day"
            else:
                what = "text"
            fields[name] = (what, info.is_required())
        kinds[kind] = fields
    return kinds


FIELD_KINDS = _field_kinds()
_TEMPLATE = re.compile(r"\{([^{}]+)\}")
_FIELD_OPTIONS = frozenset({"column", "value", "template", "negate", "split", "map", "percent",
                            "strip_zeros"})


@dataclass(frozen=True)
class Source:
    """Where a field's value comes from: a column, a constant or a template of columns."""

    field: str
    kind: str  # decimal | day | timestamp | text | list
    required: bool
    column: str | None = None
    value: str | None = None
    template: str | None = None
    negate: bool = False
    split: str | None = None
    translate: dict[str, str] | None = None
    percent: bool = False
    strip_zeros: bool = False  # SAP keeps numeric ids padded: 0000100001 is customer 100001

    @property
    def columns(self) -> list[str]:
        if self.column is not None:
            return [self.column]
        if self.template is not None:
            return _TEMPLATE.findall(self.template)
        return []

    @property
    def named(self) -> str:
        """The column(s) a rejection names."""
        return ", ".join(self.columns) if self.columns else "(constant)"


@dataclass(frozen=True)
class TierSpread:
    """Tiers over columns (`from`/`rate` patterns holding `{n}`, n = 1, 2, ...) or over
    consecutive rows (`from`/`rate` column names; the rows share the command's group column)."""

    from_column: str
    rate_column: str
    in_rows: bool
    percent: bool = False


@dataclass(frozen=True)
class CommandMap:
    name: str
    kind: str
    sources: tuple[Source, ...]
    tiers: TierSpread | None = None
    group_by: str | None = None  # tiers in rows: the column whose value ties rows together


@dataclass(frozen=True)
class Mapping:
    """A parsed mapping file (see `load_mapping`)."""

    commands: dict[str, CommandMap]
    choose_column: str | None = None
    choose: dict[str, str] = field(default_factory=dict)
    skip: frozenset[str] = frozenset()
    delimiter: str | None = None
    encoding: str | None = None
    sheet: str | None = None
    header_row: int = 1
    numbers: NumberFormat = NumberFormat()
    dates: tuple[DateFormat, ...] = (DateFormat.named("YYYY-MM-DD"),)
    timezone: str = "UTC"

    def columns(self) -> set[str]:
        """Every column the mapping reads (tier patterns not included)."""
        used = {self.choose_column} if self.choose_column else set()
        for command in self.commands.values():
            for source in command.sources:
                used.update(source.columns)
            if command.tiers is not None and command.tiers.in_rows:
                used.update((command.tiers.from_column, command.tiers.rate_column))
        return used


_TOP_KEYS = {"file", "numbers", "dates", "constants", "choose", "commands"}


def load_mapping(path: str | Path) -> Mapping:
    """Read and check a mapping file; every problem is a `MappingError` naming its key."""
    try:
        text = Path(path).read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise MappingError("", f"mapping {path}: no such file") from None
    except UnicodeDecodeError:
        raise MappingError("", f"mapping {path}: not UTF-8 text; save it as UTF-8") from None
    except OSError as exc:
        raise MappingError("", f"mapping {path}: {exc.strerror or exc}") from None
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise MappingError("", f"mapping {path} is not valid TOML: {exc}") from None
    return parse_mapping(document)


def _table(document: dict[str, Any], key: str) -> dict[str, Any]:
    value = document.get(key.rsplit(".", 1)[-1], {})
    if not isinstance(value, dict):
        raise MappingError(key, f"must be a table ([{key}]), got {_toml_kind(value)}")
    return value


def _toml_kind(value: Any) -> str:
    return {str: "a string", bool: "true/false", int: "a number", float: "a number",
            list: "a list", dict: "a table"}.get(type(value), type(value).__name__)


def _string(value: Any, key: str, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise MappingError(key, f"must be {what} in quotes, got {_toml_kind(value)}")
    return value


def _unknown(table: dict[str, Any], allowed: Sequence[str] | set[str] | frozenset[str],
             prefix: str) -> None:
    for key in table:
        if key not in allowed:
            raise MappingError(f"{prefix}{key}", f"is not a key of this table; it takes "
                               f"{', '.join(sorted(allowed))}")


def parse_mapping(document: dict[str, Any]) -> Mapping:
    """A mapping from its decoded TOML (see docs/importing.md)."""
    _unknown(document, _TOP_KEYS, "")
    file = _table(document, "file")
    _unknown(file, {"delimiter", "encoding", "sheet", "header_row"}, "file.")
    delimiter = file.get("delimiter")
    if delimiter is not None and (not isinstance(delimiter, str) or len(delimiter) != 1):
        raise MappingError("file.delimiter", "one character in quotes, such as \";\" or "
                           "\"\\t\" (leave it out to have it sniffed)")
    encoding = file.get("encoding")
    if encoding is not None:
        encoding = check_encoding(_string(encoding, "file.encoding", "an encoding name"),
                                  "file.encoding")
    sheet = file.get("sheet")
    if sheet is not None:
        sheet = _string(sheet, "file.sheet", "a sheet name")
    header_row = file.get("header_row", 1)
    if not isinstance(header_row, int) or isinstance(header_row, bool) or header_row < 1:
        raise MappingError("file.header_row", "the number of the row holding the column "
                           "names, 1 or more (header_row = 1)")

    numbers = _table(document, "numbers")
    _unknown(numbers, {"format"}, "numbers.")
    number_format = NumberFormat.named(
        _string(numbers.get("format", "1234.56"), "numbers.format", "a number format"))

    dates = _table(document, "dates")
    _unknown(dates, {"formats", "timezone"}, "dates.")
    forms = dates.get("formats", ["YYYY-MM-DD"])
    if isinstance(forms, str):
        forms = [forms]
    if not isinstance(forms, list) or not forms:
        raise MappingError("dates.formats", "a list of date formats, such as "
                           "[\"DD.MM.YYYY\", \"excel\"]")
    date_formats = tuple(DateFormat.named(_string(f, "dates.formats", "a date format"))
                         for f in forms)
    timezone = _string(dates.get("timezone", "UTC"), "dates.timezone", "a time zone name")
    _zone(timezone)

    constants = _table(document, "constants")
    commands_table = _table(document, "commands")
    if not commands_table:
        raise MappingError("commands", "no command is mapped; add a table such as "
                           "[commands.record_sale] with sale_id = \"Invoice\", ...")
    commands: dict[str, CommandMap] = {}
    for name, spec in commands_table.items():
        commands[name] = _command_map(name, spec, constants)
    for key in constants:
        if not any(key in FIELD_KINDS[m.kind] for m in commands.values()):
            raise MappingError(f"constants.{key}", "is not a field of any mapped command")

    choose = _table(document, "choose")
    _unknown(choose, {"column", "values", "skip"}, "choose.")
    choose_column = None
    chosen: dict[str, str] = {}
    skip: frozenset[str] = frozenset()
    if choose:
        choose_column = _string(choose.get("column"), "choose.column", "a column name")
        values = choose.get("values", {})
        if not isinstance(values, dict) or not values:
            raise MappingError("choose.values", "a table of the column's values and the "
                               "command each stands for, such as { F2 = \"invoice\", "
                               "G2 = \"credit_memo\" }")
        for value, target in values.items():
            if target not in commands:
                raise MappingError(f"choose.values.{value}", f"names {target!r}, which is not "
                                   f"a [commands.*] table; mapped: {', '.join(commands)}")
            chosen[value] = target
        raw_skip = choose.get("skip", [])
        if not isinstance(raw_skip, list) or not all(isinstance(v, str) for v in raw_skip):
            raise MappingError("choose.skip", "a list of the column's values whose rows are "
                               "left out, such as [\"S1\"]")
        skip = frozenset(raw_skip)
    elif len(commands) > 1:
        raise MappingError("choose", f"{len(commands)} commands are mapped "
                           f"({', '.join(commands)}): say which one a row is with a choose table "
                           "table (column = \"DocType\", values = { F2 = \"invoice\" })")
    return Mapping(commands=commands, choose_column=choose_column, choose=chosen, skip=skip,
                   delimiter=delimiter, encoding=encoding, sheet=sheet, header_row=header_row,
                   numbers=number_format, dates=date_formats, timezone=timezone)


def check_encoding(name: str, key: str) -> str:
    try:
        return codecs.lookup(name).name
    except LookupError:
        raise MappingError(key, f"{name!r} is not an encoding Python knows; write utf-8, "
                           "latin-1 or cp1252") from None


def _zone(name: str) -> Any:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    if name.upper() == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise MappingError("dates.timezone", f"{name!r} is not a time zone; write UTC or a "
                           "name such as Europe/Berlin") from None


def _command_map(name: str, spec: Any, constants: dict[str, Any]) -> CommandMap:
    prefix = f"commands.{name}"
    if not isinstance(spec, dict):
        raise MappingError(prefix, f"must be a table [{prefix}], got {_toml_kind(spec)}")
    kind = spec.get("type", name)
    if kind not in FIELD_KINDS:
        raise MappingError(f"{prefix}.type" if "type" in spec else prefix,
                           f"{kind!r} is not a contract command; name the table after one, or "
                           f"give type = one of {', '.join(FIELD_KINDS)}")
    fields = FIELD_KINDS[kind]
    sources: list[Source] = []
    tiers: TierSpread | None = None
    group_by = spec.get("group_by")
    for key, value in spec.items():
        if key in ("type", "group_by"):
            continue
        if key not in fields:
            raise MappingError(f"{prefix}.{key}", f"is not a field of {kind}; its fields: "
                               f"{', '.join(fields)}")
        what, required = fields[key]
        if what == "tiers":
            tiers = _tier_spread(value, f"{prefix}.{key}")
            continue
        sources.append(_source(key, what, required, value, f"{prefix}.{key}"))
    for key, value in constants.items():
        if key in fields and key not in spec:
            what, required = fields[key]
            if not isinstance(value, str):
                raise MappingError(f"constants.{key}", "a constant is written in quotes, "
                                   f"such as {key} = \"EUR\"")
            sources.append(Source(key, what, required, value=value))
    given = {s.field for s in sources} | ({"tiers"} if tiers else set())
    missing = [f for f, (_, required) in fields.items() if required and f not in given]
    if missing:
        raise MappingError(prefix, f"{kind} needs {', '.join(missing)}: map each to a column "
                           f"({missing[0]} = \"Column\") or a constant in [constants]")
    if tiers is not None and tiers.in_rows:
        if group_by is None:
            owner = next((s for s in sources if s.field == "agreement_id"), None)
            if owner is None or owner.column is None:
                raise MappingError(f"{prefix}.group_by", "tiers over rows need the column that "
                                   "ties a command's rows together: group_by = \"Agreement\"")
            group_by = owner.column
        group_by = _string(group_by, f"{prefix}.group_by", "a column name")
    elif group_by is not None:
        raise MappingError(f"{prefix}.group_by", "is only for tiers spread over rows "
                           "(tiers = { from = \"From\", rate = \"Rate\" })")
    return CommandMap(name, kind, tuple(sources), tiers, group_by)


def _source(name: str, what: str, required: bool, spec: Any, key: str) -> Source:
    if isinstance(spec, str):
        spec = {"template": spec} if _TEMPLATE.search(spec) else {"column": spec}
    if not isinstance(spec, dict):
        raise MappingError(key, f"write a column name (\"{name.upper()}\"), a template "
                           f"(\"{{A}}-{{B}}\") or a table ({{ value = \"...\" }}); got "
                           f"{_toml_kind(spec)}")
    _unknown(spec, _FIELD_OPTIONS, f"{key}.")
    given = [k for k in ("column", "value", "template") if k in spec]
    if len(given) != 1:
        raise MappingError(key, "give exactly one of column = \"Name\", value = \"constant\" "
                           "or template = \"{A}-{B}\"")
    for option in given:
        _string(spec[option], f"{key}.{option}", "text")
    negate = spec.get("negate", False)
    percent = spec.get("percent", False)
    strip_zeros = spec.get("strip_zeros", False)
    for option, flag in (("negate", negate), ("percent", percent), ("strip_zeros", strip_zeros)):
        if not isinstance(flag, bool):
            raise MappingError(f"{key}.{option}", "true or false")
        if flag and option != "strip_zeros" and what != "decimal":
            raise MappingError(f"{key}.{option}", f"only for numbers; {name} is not one")
        if flag and option == "strip_zeros" and what != "text":
            raise MappingError(f"{key}.{option}", f"only for ids and text; {name} is not one")
    split = spec.get("split")
    if split is not None:
        _string(split, f"{key}.split", "a separator")
        if what != "list":
            raise MappingError(f"{key}.split", f"only for lists; {name} is not one")
    translate = spec.get("map")
    if translate is not None and (not isinstance(translate, dict) or not all(
            isinstance(v, str) for v in translate.values())):
        raise MappingError(f"{key}.map", "a table of cell values and what each means, such "
                           "as { Retro = \"retroactive\", Stufen = \"incremental\" }")
    template = spec.get("template")
    if template is not None and not _TEMPLATE.search(template):
        raise MappingError(f"{key}.template", "name columns in braces: \"{VBELN}-{POSNR}\"")
    return Source(name, what, required, column=spec.get("column"), value=spec.get("value"),
                  template=template, negate=negate, split=split, translate=translate,
                  percent=percent, strip_zeros=strip_zeros)


def _tier_spread(spec: Any, key: str) -> TierSpread:
    if not isinstance(spec, dict):
        raise MappingError(key, "a table: { from = \"tier{n}_from\", rate = \"tier{n}_rate\" } "
                           "for tiers over columns, or { from = \"From\", rate = \"Rate\" } for "
                           "tiers over rows")
    _unknown(spec, {"from", "rate", "percent"}, f"{key}.")
    first = _string(spec.get("from"), f"{key}.from", "a column name or pattern")
    rate = _string(spec.get("rate"), f"{key}.rate", "a column name or pattern")
    percent = spec.get("percent", False)
    if not isinstance(percent, bool):
        raise MappingError(f"{key}.percent", "true or false (true: rates written as 5 for 5 %)")
    spread = "{n}" in first
    if spread != ("{n}" in rate):
        raise MappingError(key, "from and rate both hold {n} (tiers over columns) or neither "
                           "(tiers over rows)")
    return TierSpread(first, rate, in_rows=not spread, percent=percent)


# Reading files -------------------------------------------------------------------------------


@dataclass
class Sheet:
    """A file opened for import: its header and its rows (row number, cells), streamed."""

    header: list[str]
    rows: Iterator[tuple[int, Sequence[Any]]]
    #: how far through the file a progress bar is: `done()` of `total` (bytes of a CSV file,
    #: rows of a workbook; None when not known)
    total: int | None = None
    done: Callable[[], int] = lambda: 0
    unit: str = "bytes"
    close: Callable[[], None] = lambda: None


class _Counting(io.RawIOBase):
    """A binary reader that counts what it has read (for a progress bar)."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw, self.count = raw, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.raw.read(len(buffer))
        buffer[: len(data)] = data
        self.count += len(data)
        return len(data)

    def close(self) -> None:
        self.raw.close()
        super().close()


def open_sheet(path: str | Path, mapping: Mapping, *, sheet: str | None = None,
               encoding: str | None = None) -> Sheet:
    """Open a CSV file or an .xlsx workbook (by its name's ending); `ImportUnreadable` when it
    cannot be read at all."""
    file = Path(path)
    if file.is_dir():
        raise ImportUnreadable(f"{path} is a directory, not a file")
    if not file.exists():
        raise ImportUnreadable(f"{path}: no such file")
    if file.suffix.lower() in (".xlsx", ".xlsm"):
        if encoding is not None:
            raise ImportUnreadable(f"--encoding {encoding}: only for CSV files; a workbook "
                                   "says its own encoding (leave --encoding out)")
        return _open_xlsx(file, sheet or mapping.sheet, mapping.header_row)
    if file.suffix.lower() == ".xls":
        raise ImportUnreadable(f"{path}: an .xls workbook (Excel 97-2003) cannot be read; save "
                               "it as .xlsx or CSV")
    if sheet is not None:
        raise ImportUnreadable(f"--sheet {sheet}: {path} is not an .xlsx workbook")
    return _open_csv(file, mapping, encoding)


def _open_csv(file: Path, mapping: Mapping, encoding: str | None) -> Sheet:
    name = encoding or mapping.encoding or "utf-8"
    try:
        name = codecs.lookup(name).name
    except LookupError:
        raise ImportUnreadable(f"--encoding {name}: not an encoding Python knows; write utf-8, "
                               "latin-1 or cp1252") from None
    try:
        raw = file.open("rb")
    except OSError as exc:
        raise ImportUnreadable(f"{file}: {exc.strerror or exc}") from None
    size = file.stat().st_size
    head = raw.read(SNIFF_BYTES)
    raw.seek(0)
    if name == "utf-8":
        name = "utf-8-sig"  # a byte-order mark (Excel's "CSV UTF-8") starts the file
        try:
            codecs.getincrementaldecoder("utf-8")().decode(head, final=len(head) < SNIFF_BYTES)
        except UnicodeDecodeError as exc:
            raw.close()
            raise ImportUnreadable(
                f"{file} is not UTF-8 (byte {exc.start + 1} is {head[exc.start]:#04x}); if it "
                "comes from Excel or an older ERP it is likely Latin-1: give --encoding "
                "latin-1 (or encoding = \"latin-1\" under [file]); nothing was imported"
            ) from None
    text_head = head.decode(name, errors="replace")
    delimiter = mapping.delimiter or _sniff_delimiter(text_head, file, mapping.header_row)
    counting = _Counting(raw)
    # undecodable bytes later in the file become lone surrogates, refused row by row
    text = io.TextIOWrapper(io.BufferedReader(counting), encoding=name,
                            errors="surrogateescape", newline="")
    reader = csv.reader(text, delimiter=delimiter, quotechar='"', doublequote=True)

    def records() -> Iterator[tuple[int, Sequence[Any]]]:
        number = 0
        while True:
            number += 1
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:  # an overlong field: that row only
                yield number, _Unreadable(str(exc))
                continue
            except OSError as exc:
                raise ImportUnreadable(f"{file}: reading row {number} failed: "
                                       f"{exc.strerror or exc}") from None
            yield number, row

    rows = records()
    header = _header(rows, mapping.header_row, file)
    return Sheet(header, rows, size, lambda: counting.count, "bytes", text.close)


class _Unreadable(list[Any]):
    """A row the CSV reader refused (its reason in `reason`)."""

    def __init__(self, reason: str) -> None:
        super().__init__()
        self.reason = reason


def _sniff_delimiter(head: str, file: Path, header_row: int = 1) -> str:
    lines = head.splitlines()[header_row - 1:header_row + 19]  # the header and rows below
    sample = "\n".join(lines)
    try:
        return csv.Sniffer().sniff(sample, delimiters=SNIFFED_DELIMITERS).delimiter
    except csv.Error:
        pass
    first = lines[0] if lines else ""
    counts = {d: first.count(d) for d in SNIFFED_DELIMITERS}
    best = max(counts, key=lambda d: counts[d])
    if counts[best] == 0:
        raise ImportUnreadable(f"{file}: cannot tell its delimiter (none of , ; tab | in its "
                               "first line); give delimiter = \";\" under [file]")
    return best


def _header(rows: Iterator[tuple[int, Sequence[Any]]], header_row: int, file: Path
            ) -> list[str]:
    for number, row in rows:
        if number == header_row:
            if isinstance(row, _Unreadable):
                raise ImportUnreadable(f"{file}: header row {number}: {row.reason}")
            return [cell_text(v) if v is not None else "" for v in row]
    raise ImportUnreadable(f"{file}: no header row {header_row} (the file has fewer rows); "
                           "check header_row under [file]")


def _open_xlsx(file: Path, sheet: str | None, header_row: int) -> Sheet:
    import zipfile

    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        book = load_workbook(file, read_only=True, data_only=True)
    except (InvalidFileException, zipfile.BadZipFile, KeyError, OSError) as exc:
        raise ImportUnreadable(f"{file}: not a readable .xlsx workbook ({exc})") from None
    except Exception as exc:  # noqa: BLE001 - a damaged workbook, whatever the parser says
        raise ImportUnreadable(f"{file}: not a readable .xlsx workbook "
                               f"({type(exc).__name__}: {exc})") from None
    names = book.sheetnames
    if sheet is None:
        worksheet = book.worksheets[0]
    elif sheet in names:
        worksheet = book[sheet]
    else:
        book.close()
        raise ImportUnreadable(f"--sheet {sheet}: {file} has no such sheet; its sheets: "
                               f"{', '.join(names)}")
    total = worksheet.max_row if isinstance(worksheet.max_row, int) else None
    # the size a workbook states may be wrong (some writers store A1:A1): read every row
    worksheet.reset_dimensions()
    counted = [0]

    def records() -> Iterator[tuple[int, Sequence[Any]]]:
        number = 0
        try:
            for number, row in enumerate(worksheet.iter_rows(values_only=True), start=1):
                counted[0] = number
                yield number, row
        except Exception as exc:  # a damaged part of the workbook: stop there, named
            raise ImportUnreadable(f"{file}: row {number + 1} of sheet {worksheet.title!r} "
                                   f"cannot be read ({type(exc).__name__}: {exc})") from None

    rows = records()
    try:
        header = _header(rows, header_row, file)
    except ImportUnreadable:
        book.close()
        raise
    return Sheet(header, rows, total, lambda: counted[0], "rows", book.close)


# Rows to commands -----------------------------------------------------------------------------


@dataclass(frozen=True)
class MappedRow:
    """One command from the file, or why a row (or rows) of it cannot be one."""

    number: int  # the file's row number (the first of the rows of a command)
    text: bytes  # kept with a rejection: the command as JSON, or the row's cells
    command: c.Command | None
    problem: Rejection | None


@dataclass
class ImportCounts:
    """Rows left out on purpose (the report's accepted/duplicate/rejected count commands)."""

    rows: int = 0
    blank: int = 0
    skipped: int = 0


class _RowProblem(Exception):
    def __init__(self, field: str, column: str, value: Any, why: str) -> None:
        super().__init__(why)
        self.field, self.column, self.value, self.why = field, column, value, why


@dataclass
class _Pending:
    command: CommandMap
    key: str
    first: int
    rows: list[tuple[int, Sequence[Any]]]


class Importer:
    """Turns a `Sheet`'s rows into `MappedRow`s with a `Mapping`."""

    def __init__(self, mapping: Mapping, header: list[str]) -> None:
        self.mapping = mapping
        self.header = header
        self.counts = ImportCounts()
        self.index = self._index(header)
        self.zone = _zone(mapping.timezone)
        self.number_pattern = mapping.numbers.pattern()
        self.tier_columns: dict[str, list[tuple[int, str, int, str]]] = {}
        for name, command in mapping.commands.items():
            if command.tiers is not None and not command.tiers.in_rows:
                self.tier_columns[name] = self._spread(command)
        self.single = (next(iter(mapping.commands.values()))
                       if mapping.choose_column is None else None)
        used = mapping.columns() | {m.group_by for m in mapping.commands.values()
                                    if m.group_by}
        missing = sorted(col for col in used if col not in self.index)
        if missing:
            from difflib import get_close_matches

            near = get_close_matches(missing[0], [h for h in header if h], n=1, cutoff=0.6)
            hint = f" (is {missing[0]!r} written {near[0]!r} in the file?)" if near else ""
            raise ImportUnreadable(
                f"the mapping reads column{'s' if len(missing) > 1 else ''} "
                f"{', '.join(repr(m) for m in missing)}, which the file's header does not "
                f"have{hint}; its columns: {', '.join(repr(h) for h in header if h)}; nothing "
                "was imported")
        #: per command, its fields' readers (cells -> value, None when left out), compiled
        #: once: the per-row path is a loop of calls with no lookups in the mapping
        self.steps = {name: tuple((source.field, self._step(source, command.kind))
                                  for source in command.sources)
                      for name, command in mapping.commands.items()}

    def _index(self, header: list[str]) -> dict[str, int]:
        index: dict[str, int] = {}
        twice: set[str] = set()
        for position, name in enumerate(header):
            if name in index:
                twice.add(name)
            index.setdefault(name, position)
        used = self.mapping.columns()
        clash = sorted(twice & used)
        if clash:
            raise ImportUnreadable(f"column {clash[0]!r} appears more than once in the header; "
                                   "rename one of them so the mapping can tell which it reads")
        return index

    def _spread(self, command: CommandMap) -> list[tuple[int, str, int, str]]:
        assert command.tiers is not None
        found = []
        for n in range(1, TIERS_MAX + 1):
            first = command.tiers.from_column.replace("{n}", str(n))
            rate = command.tiers.rate_column.replace("{n}", str(n))
            if first not in self.index and rate not in self.index:
                break
            for column in (first, rate):
                if column not in self.index:
                    raise ImportUnreadable(f"the header has {first if column == rate else rate}"
                                           f" but no {column!r}: tier {n} needs both columns")
            found.append((self.index[first], first, self.index[rate], rate))
        if not found:
            raise ImportUnreadable(
                f"commands.{command.name}.tiers: no column "
                f"{command.tiers.from_column.replace('{n}', '1')!r} in the header; tiers over "
                "columns start at 1")
        return found

    def mapped(self, rows: Iterator[tuple[int, Sequence[Any]]]) -> Iterator[MappedRow]:
        """The commands of `rows`, in file order; rows of one grouped command are gathered."""
        pending: _Pending | None = None
        for number, cells in rows:
            self.counts.rows += 1
            if isinstance(cells, _Unreadable):
                if pending is not None:
                    yield self._flush(pending)
                    pending = None
                yield self._unreadable(number, cells)
                continue
            if (not "".join(cells).strip() if cells.__class__ is list
                    else all(_is_empty(v) for v in cells)):  # a CSV row is a list of text
                self.counts.blank += 1
                continue
            if (pending is not None and self.mapping.choose_column is not None
                    and _is_empty(self._cell(cells, self.mapping.choose_column))
                    and pending.command.group_by is not None
                    and cell_text(self._cell(cells, pending.command.group_by)) == pending.key
                    and len(pending.rows) < GROUP_ROWS_MAX):
                pending.rows.append((number, cells))  # a tier row that leaves the type out
                continue
            try:
                command = self._choose(number, cells)
            except _RowProblem as problem:
                if pending is not None:
                    yield self._flush(pending)
                    pending = None
                yield self._rejected(number, cells, None, problem)
                continue
            if command is None:
                self.counts.skipped += 1
                continue
            if command.group_by is None:
                if pending is not None:
                    yield self._flush(pending)
                    pending = None
                yield self._one(number, cells, command)
                continue
            key = cell_text(self._cell(cells, command.group_by))
            if (pending is not None and pending.command is command and pending.key == key
                    and len(pending.rows) < GROUP_ROWS_MAX):
                pending.rows.append((number, cells))
                continue
            if pending is not None:
                yield self._flush(pending)
            pending = _Pending(command, key, number, [(number, cells)])
        if pending is not None:
            yield self._flush(pending)

    # one row ------------------------------------------------------------------------------

    def _cell(self, cells: Sequence[Any], column: str) -> Any:
        position = self.index[column]
        return cells[position] if position < len(cells) else None

    def _choose(self, number: int, cells: Sequence[Any]) -> CommandMap | None:
        mapping = self.mapping
        if len(cells) > len(self.header) and any(
                not _is_empty(v) for v in cells[len(self.header):]):
            raise _RowProblem("", f"column {len(self.header) + 1}", cells[len(self.header)],
                              f"the row has {len(cells)} cells, the header "
                              f"{len(self.header)} columns; check the delimiter or quoting")
        if self.single is not None:
            return self.single
        assert mapping.choose_column is not None
        value = cell_text(self._cell(cells, mapping.choose_column))
        if value in mapping.skip:
            return None
        target = mapping.choose.get(value)
        if target is None:
            known = ", ".join(sorted(mapping.choose))
            raise _RowProblem("type", mapping.choose_column, value,
                              f"is not a value the mapping knows (choose.values: {known}); "
                              "map it or list it in choose.skip")
        return mapping.commands[target]

    def _one(self, number: int, cells: Sequence[Any], command: CommandMap) -> MappedRow:
        try:
            document = self._document(cells, command)
            if command.tiers is not None:
                document["tiers"] = self._tiers_in_columns(cells, command)
        except _RowProblem as problem:
            return self._rejected(number, cells, command, problem)
        return self._parsed(number, document, cells, command)

    def _document(self, cells: Sequence[Any], command: CommandMap) -> dict[str, Any]:
        document: dict[str, Any] = {"type": command.kind}
        for name, step in self.steps[command.name]:
            value = step(cells)
            if value is not None:
                document[name] = value
        return document

    def _raw(self, cells: Sequence[Any], source: Source) -> Any:
        """The cell (or the template's text) a field is read from."""
        if source.value is not None:
            return source.value
        if source.template is not None:
            parts = {col: self._cell(cells, col) for col in source.columns}
            if all(_is_empty(v) for v in parts.values()):
                return None
            return _TEMPLATE.sub(lambda m: "" if _is_empty(parts[m.group(1)])
                                 else cell_text(parts[m.group(1)]), source.template)
        assert source.column is not None
        return self._cell(cells, source.column)

    def _step(self, source: Source, kind: str) -> Callable[[Sequence[Any]], Any]:
        """A reader of `source`'s field from a row's cells: its value, None when the cell is
        empty and the field optional; `_RowProblem` naming column and value otherwise."""
        if source.value is not None:
            constant = source.value
            return lambda cells: constant
        convert = self._converter(source)
        field, named, required = source.field, source.named, source.required

        def empty() -> None:
            if required:
                raise _RowProblem(field, named, "", f"is empty; {field} is required for {kind}")

        def checked(raw: Any) -> Any:
            try:
                return convert(raw)
            except CellError as error:
                raise _RowProblem(field, named, raw, str(error)) from None

        if source.column is None:
            def from_template(cells: Sequence[Any]) -> Any:
                raw = self._raw(cells, source)
                return empty() if raw is None else checked(raw)

            return from_template
        at = self.index[source.column]

        def from_column(cells: Sequence[Any]) -> Any:
            raw = cells[at] if at < len(cells) else None
            if raw is None or raw == "" or (raw.__class__ is str and raw.isspace()):
                return empty()
            try:
                return convert(raw)
            except CellError as error:
                raise _RowProblem(field, named, raw, str(error)) from None

        return from_column

    def _converter(self, source: Source) -> Callable[[Any], Any]:
        """Cell (not empty) -> the field's JSON value; `CellError` says why not."""
        what, translate = source.kind, source.translate

        def text(raw: Any) -> str:
            if raw.__class__ is str:
                value = raw.strip()
                if not value.isascii() and _has_surrogate(value):
                    raise CellError("holds bytes that are not UTF-8; if the file is Latin-1, "
                                    "give --encoding latin-1 (or file.encoding = \"latin-1\" "
                                    "in the mapping)")
                return value
            return cell_text(raw)

        convert: Callable[[Any], Any]
        if what == "decimal":
            numbers, pattern = self.mapping.numbers, self.number_pattern
            percent, negate = source.percent, source.negate

            def convert(raw: Any) -> str:
                if raw.__class__ is str and "%" not in raw and not percent:
                    number = numbers.parse(raw, pattern)
                else:
                    number = self.decimal(raw, percent)
                return str(-number if negate and number else number)
        elif what == "day":
            def convert(raw: Any) -> str:
                return self.day(text(raw) if raw.__class__ is str else raw).isoformat()
        elif what == "timestamp":
            def convert(raw: Any) -> str:
                return self.moment(text(raw) if raw.__class__ is str else raw)
        elif what == "list":
            split = source.split

            def convert(raw: Any) -> list[str]:
                value = text(raw)
                items = [p.strip() for p in value.split(split)] if split else [value]
                return [p for p in items if p]
        elif source.strip_zeros:
            def convert(raw: Any) -> str:
                value = text(raw)
                stripped = value.lstrip("0")
                return stripped if value.isdigit() and stripped else value
        else:
            convert = text
        if translate is None:
            return convert
        plain = convert

        def translated(raw: Any) -> Any:
            value = text(raw)
            if value not in translate:
                raise CellError(f"is not a value of the mapping's map for {source.field} "
                                f"({', '.join(repr(k) for k in translate)})")
            return plain(translate[value])

        return translated

    def decimal(self, raw: Any, percent: bool = False) -> Decimal:
        """A cell as an exact decimal: text in the mapping's number format, or a number cell."""
        if isinstance(raw, bool):
            raise CellError("is TRUE/FALSE, not a number")
        if isinstance(raw, int):
            value = Decimal(raw)
        elif isinstance(raw, float):
            # the shortest text that reads back as the same double: what the cell shows
            value = Decimal(repr(raw))
            if not value.is_finite():
                raise CellError("is not a finite number")
        elif isinstance(raw, str):
            value = self.mapping.numbers.parse(raw, self.number_pattern)
            if "%" in raw:  # "5 %" is 0.05 already, whatever the mapping says
                return value
        else:
            raise CellError(f"is a {type(raw).__name__}, not a number")
        return value.scaleb(-2) if percent else value

    def day(self, raw: Any) -> date:
        """A cell as a date: a date cell, an Excel serial number, or text in a mapped form."""
        if isinstance(raw, datetime):
            return raw.date()
        if isinstance(raw, date):
            return raw
        serial = any(f.regex is None for f in self.mapping.dates)
        if isinstance(raw, int | float) and not isinstance(raw, bool):
            if not serial:
                raise CellError("is a number, not a date; if it is an Excel serial day, add "
                                "\"excel\" to the mapping's dates.formats")
            try:
                return excel_day(Decimal(repr(raw)) if isinstance(raw, float) else raw)
            except (InvalidOperation, ValueError):
                raise CellError("is not an Excel serial day") from None
        text = cell_text(raw)
        for form in self.mapping.dates:
            found = form.parse(text)
            if found is not None:
                return found
        forms = ", ".join(f.name for f in self.mapping.dates)
        raise CellError(f"is not a date in the mapping's formats ({forms})")

    def moment(self, raw: Any) -> str:
        """A timestamp: a date-time cell (in the mapping's time zone) or ISO 8601 text."""
        if isinstance(raw, datetime):
            moment = raw if raw.tzinfo is not None else raw.replace(tzinfo=self.zone)
            return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
        return cell_text(raw)

    def _tiers_in_columns(self, cells: Sequence[Any], command: CommandMap
                          ) -> list[dict[str, str]]:
        assert command.tiers is not None
        tiers: list[dict[str, str]] = []
        ended: str | None = None
        for from_at, first, rate_at, rate in self.tier_columns[command.name]:
            low = cells[from_at] if from_at < len(cells) else None
            high = cells[rate_at] if rate_at < len(cells) else None
            if _is_empty(low) and _is_empty(high):
                ended = ended or first
                continue
            if ended is not None:
                raise _RowProblem("tiers", first, low if not _is_empty(low) else high,
                                  f"a tier after the empty {ended}; fill the tiers in order")
            tiers.append(self._tier(low, first, high, rate, command.tiers.percent, len(tiers)))
        if not tiers:
            first_column = self.tier_columns[command.name][0][1]
            raise _RowProblem("tiers", first_column, "", "is empty; an agreement needs at "
                              "least one tier")
        return tiers

    def _tier(self, low: Any, first: str, high: Any, rate: str, percent: bool, index: int
              ) -> dict[str, str]:
        for value, column in ((low, first), (high, rate)):
            if _is_empty(value):
                raise _RowProblem(f"tiers[{index}]", column, "",
                                  "is empty; a tier needs both its from and its rate")
        try:
            threshold = self.decimal(low)
        except CellError as error:
            raise _RowProblem(f"tiers[{index}].from", first, low, str(error)) from None
        try:
            value = self.decimal(high, percent)
        except CellError as error:
            raise _RowProblem(f"tiers[{index}].rate", rate, high, str(error)) from None
        return {"from": str(threshold), "rate": str(value)}

    # rows of one command ------------------------------------------------------------------

    def _flush(self, pending: _Pending) -> MappedRow:
        command = pending.command
        tiers = command.tiers
        assert tiers is not None and command.group_by is not None
        number, first = pending.rows[0]
        try:
            document = self._document(first, command)
            read = {col for s in command.sources for col in s.columns}
            document["tiers"] = []
            for at, (row_number, cells) in enumerate(pending.rows):
                if at:
                    for column in sorted(read):
                        value = self._cell(cells, column)
                        if not _is_empty(value) and cell_text(value) != cell_text(
                                self._cell(first, column)):
                            raise _RowProblem(
                                "", column, value,
                                f"differs from row {number} of the same {command.group_by} "
                                f"(row {row_number}); leave it empty or equal on the tier rows")
                document["tiers"].append(self._tier(
                    self._cell(cells, tiers.from_column), tiers.from_column,
                    self._cell(cells, tiers.rate_column), tiers.rate_column, tiers.percent,
                    at))
        except _RowProblem as problem:
            rows = f"rows {number}-{pending.rows[-1][0]}" if len(pending.rows) > 1 else ""
            return self._rejected(number, first, command, problem, rows)
        return self._parsed(number, document, first, command)

    # results ------------------------------------------------------------------------------

    def _parsed(self, number: int, document: dict[str, Any], cells: Sequence[Any],
                command: CommandMap) -> MappedRow:
        text = orjson.dumps(document)
        try:
            return MappedRow(number, text, c.parse_line(text), None)
        except InvalidCommand as problem:
            top = re.split(r"[.\[]", problem.field, maxsplit=1)[0] if problem.field else ""
            source = next((s for s in command.sources if s.field == top and s.columns), None)
            if source is not None:
                raw = self._raw(cells, source)
                where = f"row {number}, column {source.named} = {_shown(cell_text(raw))}"
            else:
                where = f"row {number}"
            return MappedRow(number, text, None, InvalidCommand(
                problem.field, problem.message, reason=f"{where}: {problem.reason}"))

    def _rejected(self, number: int, cells: Sequence[Any], command: CommandMap | None,
                  problem: _RowProblem, rows: str = "") -> MappedRow:
        where = rows or f"row {number}"
        reason = f"{where}, column {problem.column} = {_shown(cell_text(problem.value))}: " \
                 f"{problem.why}"
        kept = {"row": number, "cells": self._cells_dict(cells)}
        if command is not None:
            kept = {"type": command.kind, **kept}
        return MappedRow(number, orjson.dumps(kept, default=str), None,
                         InvalidCommand(problem.field, problem.why, reason=reason))

    def _unreadable(self, number: int, row: _Unreadable) -> MappedRow:
        return MappedRow(number, orjson.dumps({"row": number}), None, InvalidCommand(
            "", row.reason, reason=f"row {number}: the CSV reader refused it: {row.reason}"))

    def _cells_dict(self, cells: Sequence[Any]) -> dict[str, str]:
        kept: dict[str, str] = {}
        for position, value in enumerate(cells):
            name = self.header[position] if position < len(self.header) else ""
            kept[name or f"column {position + 1}"] = (
                "" if value is None else cell_text(value).encode(
                    "utf-8", "surrogateescape").decode("utf-8", "replace"))
        return kept


def _has_surrogate(text: str) -> bool:
    return not text.isascii() and any("\udc80" <= ch <= "\udcff" for ch in text)


def rows_of(path: str | Path, mapping: Mapping, *, sheet: str | None = None,
            encoding: str | None = None) -> tuple[Sheet, Importer, Iterator[MappedRow]]:
    """Open `path` and map its rows: the sheet (for progress and closing), the importer (for
    its counts) and the mapped rows, streamed."""
    opened = open_sheet(path, mapping, sheet=sheet, encoding=encoding)
    try:
        importer = Importer(mapping, opened.header)
    except LedgerError:
        opened.close()
        raise
    return opened, importer, importer.mapped(opened.rows)
