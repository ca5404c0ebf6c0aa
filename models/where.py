"""The query language of ``VM.get_all_records_where`` and ``VM.get_all_where``: xapi's database
filter (ocaml/database db_filter_lex.mll, db_filter_parse.mly, db_filter.ml), evaluated on each
VM's row as the database holds it (db_cache_impl.ml ``find_refs_with_filter_internal``).

An expression is ``true``, ``false``, ``A = B`` (each side ``"literal"`` or ``field "column"``),
``not E``, ``E and E``, ``E or E`` and parentheses. ``and`` and ``or`` share one precedence and
group to the left; ``not`` binds loosest, so ``not A and B`` is ``not (A and B)``. A column is
the field's database name: a namespace joined to its field by ``__`` (``name__label``,
``memory__static_max``, ``power_state``); every value is compared as the text the database
stores (``Halted``, ``true``, ``42``).

Errors, as exnHelper.ml renders them: text outside the language is ``INVALID_VALUE [expr;
exception]``; a column the VM table has not is ``INTERNAL_ERROR ["missing field"; column; ""]``
once a row is evaluated that reaches it (``and`` and ``or`` stop early).
"""

from __future__ import annotations

import datetime
import functools
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from models.errors import XenAPIError, internal_error
from models.generic import revealing_read
from models.outcome import Value
from models.records import read_records
from models.transition import Ctx, Result
from models.world import World

__all__ = [
    "LEXING_ERROR",
    "PARSE_ERROR",
    "column_of",
    "get_all_records_where",
    "get_all_where",
    "matches",
    "parse",
    "stored_text",
]

LEXING_ERROR = 'Failure("lexing: empty token")'
"""``Printexc.to_string`` of ocamllex's failure on text no token matches."""
PARSE_ERROR = "Xapi_database__Db_filter_parse.MenhirBasics.Error"
"""``Printexc.to_string`` of the menhir parser's error (the library xapi_database, wrapped)."""

NAMESPACES: Mapping[str, frozenset[str]] = {
    "name": frozenset({"label", "description"}),
    "memory": frozenset(
        {"overhead", "target", "static_max", "dynamic_max", "dynamic_min", "static_min"}
    ),
    "VCPUs": frozenset({"params", "max", "at_startup"}),
    "actions": frozenset({"after_softreboot", "after_shutdown", "after_reboot", "after_crash"}),
    "PV": frozenset({"bootloader", "kernel", "ramdisk", "args", "bootloader_args", "legacy_args"}),
    "HVM": frozenset({"boot_policy", "boot_params", "shadow_multiplier"}),
}
"""The VM class's namespaces (datamodel_vm.ml ``namespace``) and the fields in each."""

REF_COLUMN = "_ref"
"""The column every row has for its own reference (db_names.ml ``ref``)."""

_TOKEN = re.compile(r'\s*(?:(=|\(|\))|(true|false|field|and|or|not)|"([^"]*)")')
_BLANK = re.compile(r"\s*")


@dataclass(frozen=True)
class Expr:
    """One node of a parsed expression: ``op`` is true, false, not, and, or or eq; ``parts``
    its operands (expressions, or for eq two (``field``|``literal``, text) pairs)."""

    op: str
    parts: tuple[object, ...] = ()


@functools.cache
def column_of(field: str) -> str:
    """The database column of the VM record's ``field`` (``name_label`` → ``name__label``)."""
    for namespace, fields in NAMESPACES.items():
        rest = field.removeprefix(namespace + "_")
        if rest != field and rest in fields:
            return f"{namespace}__{rest}"
    return field


class _Parser:
    """menhir's order: a token is read only when the parser needs it, so text after a parse
    error is never lexed (``"a" = = @`` is a parse error, ``"a" = @`` a lexing error)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.at = 0
        self.next: tuple[str, str] | None = None

    def fail(self) -> XenAPIError:
        return XenAPIError("INVALID_VALUE", self.text, PARSE_ERROR)

    def peek(self) -> tuple[str, str] | None:
        """The next token, (kind, text): sym or ident; None at the end."""
        if self.next is None:
            self.at = _BLANK.match(self.text, self.at).end()  # type: ignore[union-attr]
            if self.at == len(self.text):
                return None
            token = _TOKEN.match(self.text, self.at)
            if token is None:
                raise XenAPIError("INVALID_VALUE", self.text, LEXING_ERROR)
            symbol, word, ident = token.groups()
            self.next = ("ident", ident) if ident is not None else ("sym", symbol or word)
            self.at = token.end()
        return self.next

    def take(self, kind: str, text: str | None = None) -> str:
        token = self.peek()
        if token is None or token[0] != kind or (text is not None and token[1] != text):
            raise self.fail()
        self.next = None
        return token[1]

    def expr(self) -> Expr:
        """A chain of operands joined by and/or, grouped to the left."""
        left = self.operand()
        while self.peek() in (("sym", "and"), ("sym", "or")):
            op = self.take("sym")
            left = Expr(op, (left, self.operand()))
        return left

    def operand(self) -> Expr:
        token = self.peek()
        if token in (("sym", "true"), ("sym", "false")):
            return Expr(self.take("sym"))
        if token == ("sym", "not"):
            self.take("sym")
            return Expr("not", (self.expr(),))
        if token == ("sym", "("):
            self.take("sym")
            inner = self.expr()
            self.take("sym", ")")
            return inner
        left = self.value()
        self.take("sym", "=")
        return Expr("eq", (left, self.value()))

    def value(self) -> tuple[str, str]:
        if self.peek() == ("sym", "field"):
            self.take("sym")
            return ("field", self.take("ident"))
        return ("literal", self.take("ident"))


def parse(text: str) -> Expr:
    """The expression ``text`` holds; INVALID_VALUE [text; exception] when it is not one."""
    parser = _Parser(text)
    parsed = parser.expr()
    if parser.peek() is not None:
        raise parser.fail()
    return parsed


def stored_text(value: Value) -> str:
    """``value`` as the database stores it (gen_db_actions.ml ``dm_to_string``): bools as
    true/false, ints in decimal, floats ``%0.18g``, dates RFC 3339, sets and maps as
    S-expressions of quoted strings."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.18g}"
    if isinstance(value, datetime.datetime):
        return value.strftime("%Y%m%dT%H:%M:%SZ")
    if isinstance(value, Mapping):
        return _sexpr([f"({_quoted(k)} {_quoted(v)})" for k, v in value.items()])
    if isinstance(value, Sequence) and not isinstance(value, str):
        return _sexpr([_quoted(item) for item in value])
    return str(value)


def _quoted(value: object) -> str:
    text = stored_text(value)  # type: ignore[arg-type]
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _sexpr(items: list[str]) -> str:
    return "(" + " ".join(items) + ")"


def matches(expr: Expr, ref: str, record: Mapping[str, Value]) -> bool:
    """Whether the VM ``record`` (its ref ``ref``) satisfies ``expr``."""
    fields = _fields_by_column(tuple(record))
    return _evaluate(expr, lambda part: _lookup(part, ref, record, fields))


@functools.lru_cache(maxsize=64)
def _fields_by_column(fields: tuple[str, ...]) -> Mapping[str, str]:
    """The row's columns of a record with ``fields``, each with its field (every VM record
    read has the same fields: this is worked out once, not for each record and query)."""
    return {column_of(field): field for field in fields}


def _lookup(
    part: tuple[str, str], ref: str, record: Mapping[str, Value], fields: Mapping[str, str]
) -> str:
    kind, text = part
    if kind == "literal":
        return text
    if text == REF_COLUMN:
        return ref
    field = fields.get(text)
    if field is None:
        raise internal_error("missing field", text, "")
    return stored_text(record[field])


def _evaluate(expr: Expr, lookup: Callable[[tuple[str, str]], str]) -> bool:
    if expr.op in ("true", "false"):
        return expr.op == "true"
    if expr.op == "eq":
        right = lookup(expr.parts[1])  # type: ignore[arg-type]  # OCaml evaluates right first
        return lookup(expr.parts[0]) == right  # type: ignore[arg-type]
    operands = [part for part in expr.parts if isinstance(part, Expr)]
    if expr.op == "not":
        return not _evaluate(operands[0], lookup)
    first = _evaluate(operands[0], lookup)
    if expr.op == "and":
        return first and _evaluate(operands[1], lookup)
    return first or _evaluate(operands[1], lookup)


def _selected(ctx: Ctx, text: Value) -> Callable[[World], dict[str, dict[str, Value]]]:
    """The records of the VMs ``text`` selects, in a world the answer may reveal."""
    expr = parse(str(text))

    def records(world: World) -> dict[str, dict[str, Value]]:
        read = read_records(world)
        return {ref: record for ref, record in read.items() if matches(expr, ref, record)}

    records(ctx.world)  # a missing column fails the call before any branch is made
    return records


def get_all_records_where(ctx: Ctx, args: tuple[Value, ...]) -> Result:
    """VM.get_all_records_where(expr): the records of the VMs ``expr`` selects."""
    return revealing_read(ctx.world, _selected(ctx, args[0]))


def get_all_where(ctx: Ctx, args: tuple[Value, ...]) -> Result:
    """VM.get_all_where(expr): the refs of the VMs ``expr`` selects."""
    select = _selected(ctx, args[0])
    return revealing_read(ctx.world, lambda world: tuple(select(world)))
