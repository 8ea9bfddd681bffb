"""Calico's label selector language: parser, canonical form and evaluator.

Grammar (as Calico's libcalico-go selector parser accepts it)::

    selector   = [ or_expr ] EOF                  (empty text means all())
    or_expr    = and_expr { "||" and_expr }
    and_expr   = unary { "&&" unary }             (&& binds tighter than ||)
    unary      = "!" unary | "(" or_expr ")" | "all()" | "global()" | "has(" KEY ")"
               | KEY ( "==" | "!=" | "contains" | "starts with" | "ends with" ) STRING
               | KEY ( "in" | "not in" ) "{" [ STRING { "," STRING } ] "}"
    KEY        = [a-zA-Z0-9_./-]{1,512}           (prefix/name as in label keys)
    STRING     = '"' any-but-'"' '"' | "'" any-but-"'" "'"   (no escapes)

Semantics follow Calico: `==`, `in`, `contains`, `starts with`, `ends with` need the
label to be present; `!=` and `not in` also match when the label is absent. `global()`
evaluates to true over labels; callers that give it the "not namespaced" meaning (a
namespaceSelector) test `Selector.has_global()`.

`str(selector)` is Calico's canonical form: `&&`/`||` groups in parentheses, values in
double quotes (single quotes when the value contains a double quote), set members sorted
and deduplicated. It re-parses to an equal selector.
"""

from __future__ import annotations

import functools
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from libcalico.errors import FieldError, ValidationError

PURE = True

__all__ = [
    "All", "And", "Contains", "EndsWith", "Eq", "Global", "Has", "In", "Ne", "Not",
    "NotIn", "Or", "Selector", "SelectorError", "StartsWith", "parse", "validate_key",
]

MAX_KEY_LENGTH = 512
MAX_DEPTH = 100
_KEY = r"[a-zA-Z0-9_./\-]{1,512}"
_ANY_KEY_RE = re.compile(r"[a-zA-Z0-9_./\-]+")
_FULL_KEY_RE = re.compile(rf"\A{_KEY}\Z")
_WS = " \t\n\r\f\v"
# Operators recognised right after a label (Go regexp \s is ASCII whitespace).
_CONTAINS_RE = re.compile(r"contains", re.ASCII)
_STARTS_RE = re.compile(r"starts\s*with", re.ASCII)
_ENDS_RE = re.compile(r"ends\s*with", re.ASCII)
_NOT_IN_RE = re.compile(r"not\s*in\b", re.ASCII)
_IN_RE = re.compile(r"in\b", re.ASCII)


class SelectorError(ValidationError):
    """A selector that does not parse (or an AST that cannot be written as one).

    `position` is the 0-based index of the offending character in `text` (len(text) for
    "unexpected end"); `reason` is a one-line description; `str()` adds a caret line.
    """

    def __init__(self, reason: str, text: str = "", position: int = 0, path: str = "",
                 document: str = "") -> None:
        self.reason = reason
        self.text = text
        self.position = position
        self.path = path
        detail = f"invalid selector {text!r}: {reason} at position {position}"
        super().__init__((FieldError(path, detail),), document)

    def pointer(self) -> str:
        """Two lines: the selector text and a caret under the offending character."""
        return f"{self.text}\n{' ' * self.position}^"

    def __str__(self) -> str:
        return f"{self._message()}\n  {self.text}\n  {' ' * self.position}^"

    def at(self, path: str, document: str = "") -> SelectorError:
        """The same error, attributed to a field (e.g. `spec.nodeSelector`) of a document."""
        return SelectorError(self.reason, self.text, self.position, path, document)

    def with_document(self, document: str) -> SelectorError:
        return self.at(self.path, document)


def validate_key(key: str) -> str:
    if not _FULL_KEY_RE.match(key):
        raise SelectorError(
            "label key must be 1-512 characters from [a-zA-Z0-9_./-]", key, 0
        )
    return key


def _quote(value: str) -> str:
    if '"' not in value:
        return f'"{value}"'
    if "'" not in value:
        return f"'{value}'"
    raise SelectorError("a value cannot contain both quote characters", value, value.index("'"))


# ---------------------------------------------------------------------------------------------
# AST


class Selector(ABC):
    """A parsed selector (an immutable, hashable AST node)."""

    __slots__ = ()

    @abstractmethod
    def evaluate(self, labels: Mapping[str, str]) -> bool: ...

    @abstractmethod
    def _fragments(self, out: list[str]) -> None: ...

    def children(self) -> tuple[Selector, ...]:
        return ()

    def walk(self) -> Iterator[Selector]:
        yield self
        for c in self.children():
            yield from c.walk()

    def has_global(self) -> bool:
        return any(isinstance(n, Global) for n in self.walk())

    def label_keys(self) -> frozenset[str]:
        """Every label key the selector looks at."""
        return frozenset(n.key for n in self.walk() if isinstance(n, _Keyed))

    def __str__(self) -> str:
        out: list[str] = []
        self._fragments(out)
        return "".join(out)


@dataclass(frozen=True, slots=True)
class All(Selector):
    def evaluate(self, labels: Mapping[str, str]) -> bool:
        return True

    def _fragments(self, out: list[str]) -> None:
        out.append("all()")


@dataclass(frozen=True, slots=True)
class Global(Selector):
    def evaluate(self, labels: Mapping[str, str]) -> bool:
        return True

    def _fragments(self, out: list[str]) -> None:
        out.append("global()")


@dataclass(frozen=True, slots=True)
class _Keyed(Selector):
    key: str

    def __post_init__(self) -> None:
        validate_key(self.key)


@dataclass(frozen=True, slots=True)
class Has(_Keyed):
    def evaluate(self, labels: Mapping[str, str]) -> bool:
        return self.key in labels

    def _fragments(self, out: list[str]) -> None:
        out += ("has(", self.key, ")")


@dataclass(frozen=True, slots=True)
class _Compare(_Keyed):
    value: str
    OP = ""

    def __post_init__(self) -> None:
        validate_key(self.key)
        _quote(self.value)

    def _fragments(self, out: list[str]) -> None:
        out += (self.key, " ", self.OP, " ", _quote(self.value))


@dataclass(frozen=True, slots=True)
class Eq(_Compare):
    OP = "=="

    def evaluate(self, labels: Mapping[str, str]) -> bool:
        return labels.get(self.key) == self.value


@dataclass(frozen=True, slots=True)
class Ne(_Compare):
    OP = "!="

    def evaluate(self, labels: Mapping[str, str]) -> bool:
        v = labels.get(self.key)
        return v is None or v != self.value


@dataclass(frozen=True, slots=True)
class Contains(_Compare):
    OP = "contains"

    def evaluate(self, labels: Mapping[str, str]) -> bool:
        v = labels.get(self.key)
        return v is not None and self.value in v


@dataclass(frozen=True, slots=True)
class StartsWith(_Compare):
    OP = "starts with"

    def evaluate(self, labels: Mapping[str, str]) -> bool:
        v = labels.get(self.key)
        return v is not None and v.startswith(self.value)


@dataclass(frozen=True, slots=True)
class EndsWith(_Compare):
    OP = "ends with"

    def evaluate(self, labels: Mapping[str, str]) -> bool:
        v = labels.get(self.key)
        return v is not None and v.endswith(self.value)


@dataclass(frozen=True, slots=True)
class _SetOp(_Keyed):
    values: frozenset[str]
    OP = ""

    def __post_init__(self) -> None:
        validate_key(self.key)
        if not isinstance(self.values, frozenset):
            object.__setattr__(self, "values", frozenset(self.values))
        for v in self.values:
            _quote(v)

    def _fragments(self, out: list[str]) -> None:
        out += (self.key, " ", self.OP, " {", ", ".join(_quote(v) for v in sorted(self.values)),
                "}")


@dataclass(frozen=True, slots=True)
class In(_SetOp):
    OP = "in"

    def evaluate(self, labels: Mapping[str, str]) -> bool:
        v = labels.get(self.key)
        return v is not None and v in self.values


@dataclass(frozen=True, slots=True)
class NotIn(_SetOp):
    OP = "not in"

    def evaluate(self, labels: Mapping[str, str]) -> bool:
        v = labels.get(self.key)
        return v is None or v not in self.values


@dataclass(frozen=True, slots=True)
class Not(Selector):
    operand: Selector

    def evaluate(self, labels: Mapping[str, str]) -> bool:
        return not self.operand.evaluate(labels)

    def children(self) -> tuple[Selector, ...]:
        return (self.operand,)

    def _fragments(self, out: list[str]) -> None:
        out.append("!")
        self.operand._fragments(out)


@dataclass(frozen=True, slots=True)
class _Group(Selector):
    operands: tuple[Selector, ...]
    OP = ""

    def __post_init__(self) -> None:
        if not isinstance(self.operands, tuple):
            object.__setattr__(self, "operands", tuple(self.operands))
        if len(self.operands) < 2:
            raise ValueError(f"{type(self).__name__} needs at least two operands")

    def children(self) -> tuple[Selector, ...]:
        return self.operands

    def _fragments(self, out: list[str]) -> None:
        out.append("(")
        for i, op in enumerate(self.operands):
            if i:
                out.append(self.OP)
            op._fragments(out)
        out.append(")")


@dataclass(frozen=True, slots=True)
class And(_Group):
    OP = " && "

    def evaluate(self, labels: Mapping[str, str]) -> bool:
        return all(op.evaluate(labels) for op in self.operands)


@dataclass(frozen=True, slots=True)
class Or(_Group):
    OP = " || "

    def evaluate(self, labels: Mapping[str, str]) -> bool:
        return any(op.evaluate(labels) for op in self.operands)


# ---------------------------------------------------------------------------------------------
# Parser: a recursive descent over the text with one cursor (so errors know their position).


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.depth = 0

    def descend(self, pos: int) -> None:
        """Selectors come from the datastore: bound the nesting instead of the stack."""
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.fail(f"nested deeper than {MAX_DEPTH} levels of '!' and '('", pos)

    def fail(self, reason: str, position: int | None = None) -> SelectorError:
        return SelectorError(reason, self.text, self.pos if position is None else position)

    def skip_ws(self) -> None:
        n = len(self.text)
        while self.pos < n and self.text[self.pos] in _WS:
            self.pos += 1

    def peek(self, s: str) -> bool:
        self.skip_ws()
        return self.text.startswith(s, self.pos)

    def describe(self) -> str:
        self.skip_ws()
        if self.pos >= len(self.text):
            return "end of selector"
        return f"{self.text[self.pos]!r}"

    def parse(self) -> Selector:
        self.skip_ws()
        if self.pos == len(self.text):
            return All()
        sel = self.or_expr()
        self.skip_ws()
        if self.pos != len(self.text):
            raise self.fail(f"unexpected {self.describe()}, expected '&&', '||' or end")
        return sel

    def or_expr(self) -> Selector:
        ops = [self.and_expr()]
        while self.peek("||"):
            self.pos += 2
            ops.append(self.and_expr())
        return ops[0] if len(ops) == 1 else Or(tuple(ops))

    def and_expr(self) -> Selector:
        ops = [self.unary()]
        while self.peek("&&"):
            self.pos += 2
            ops.append(self.unary())
        return ops[0] if len(ops) == 1 else And(tuple(ops))

    def unary(self) -> Selector:
        self.skip_ws()
        text, pos = self.text, self.pos
        if text.startswith("!", pos) and not text.startswith("!=", pos):
            self.pos += 1
            self.descend(pos)
            node: Selector = Not(self.unary())
            self.depth -= 1
            return node
        if text.startswith("(", pos):
            self.pos += 1
            self.descend(pos)
            inner = self.or_expr()
            if not self.peek(")"):
                raise self.fail(f"unexpected {self.describe()}, expected ')'")
            self.pos += 1
            self.depth -= 1
            return inner
        m = _ANY_KEY_RE.match(text, pos)
        if not m:
            raise self.fail(f"unexpected {self.describe()}, expected a label key, '!', '(', "
                            "has(), all() or global()")
        key = m.group(0)
        if len(key) > MAX_KEY_LENGTH:
            raise self.fail(f"label key longer than {MAX_KEY_LENGTH} characters", pos)
        self.pos = m.end()
        if key in ("has", "all", "global") and text.startswith("(", self.pos):
            return self.function(key)
        return self.comparison(key)

    def function(self, name: str) -> Selector:
        """has(KEY), all() or global(); the cursor is on the '('."""
        self.pos += 1
        node: Selector = All() if name == "all" else Global()
        if name == "has":
            self.skip_ws()
            m = _ANY_KEY_RE.match(self.text, self.pos)
            if not m:
                raise self.fail(f"unexpected {self.describe()}, expected a label key")
            if len(m.group(0)) > MAX_KEY_LENGTH:
                raise self.fail(f"label key longer than {MAX_KEY_LENGTH} characters")
            self.pos = m.end()
            node = Has(m.group(0))
        if not self.peek(")"):
            raise self.fail(f"unexpected {self.describe()}, expected ')' to close {name}(")
        self.pos += 1
        return node

    def comparison(self, key: str) -> Selector:
        self.skip_ws()
        text, pos = self.text, self.pos
        if text.startswith("==", pos):
            self.pos += 2
            return Eq(key, self.string())
        if text.startswith("!=", pos):
            self.pos += 2
            return Ne(key, self.string())
        set_ops: tuple[tuple[re.Pattern[str], type[_SetOp]], ...] = (
            (_NOT_IN_RE, NotIn), (_IN_RE, In))
        for regex, set_cls in set_ops:
            m = regex.match(text, pos)
            if m:
                self.pos = m.end()
                return set_cls(key, self.string_set())
        str_ops: tuple[tuple[re.Pattern[str], type[_Compare]], ...] = (
            (_CONTAINS_RE, Contains), (_STARTS_RE, StartsWith), (_ENDS_RE, EndsWith))
        for regex, cmp_cls in str_ops:
            m = regex.match(text, pos)
            if m:
                self.pos = m.end()
                return cmp_cls(key, self.string())
        raise self.fail(
            f"unexpected {self.describe()} after label {key!r}, expected an operator "
            "(==, !=, in, not in, contains, starts with, ends with)"
        )

    def string(self) -> str:
        self.skip_ws()
        text, pos = self.text, self.pos
        if pos >= len(text) or text[pos] not in "\"'":
            raise self.fail(f"unexpected {self.describe()}, expected a quoted string")
        end = text.find(text[pos], pos + 1)
        if end < 0:
            raise self.fail("unterminated string", pos)
        self.pos = end + 1
        return text[pos + 1:end]

    def string_set(self) -> frozenset[str]:
        if not self.peek("{"):
            raise self.fail(f"unexpected {self.describe()}, expected '{{'")
        self.pos += 1
        values: list[str] = []
        if self.peek("}"):
            self.pos += 1
            return frozenset()
        while True:
            values.append(self.string())
            if self.peek("}"):
                self.pos += 1
                return frozenset(values)
            if not self.peek(","):
                raise self.fail(f"unexpected {self.describe()}, expected ',' or '}}'")
            self.pos += 1


@functools.lru_cache(maxsize=4096)
def parse(text: str) -> Selector:
    """Parse a selector; raises SelectorError with the position of the first problem.
    Results are immutable and cached (the same few selectors are parsed again and again)."""
    return _Parser(text).parse()
