"""Calico selector language: parsing, canonical form, evaluation and error positions."""

from __future__ import annotations

import pytest

from libcalico.errors import ValidationError
from libcalico.model import selector as sel
from libcalico.model.selector import (
    All,
    And,
    Contains,
    EndsWith,
    Eq,
    Global,
    Has,
    In,
    Ne,
    Not,
    NotIn,
    Or,
    StartsWith,
)

LABELS = {"app": "web", "tier": "front-end", "env": "prod", "projectcalico.org/name": "n1"}

# (selector text, expected AST, value over LABELS)
CASES = [
    ("", All(), True),
    ("all()", All(), True),
    ("  all(  )  ", All(), True),
    ("global()", Global(), True),
    ("has(app)", Has("app"), True),
    ("has( missing )", Has("missing"), False),
    ("!has(app)", Not(Has("app")), False),
    ("!has(missing)", Not(Has("missing")), True),
    ('app == "web"', Eq("app", "web"), True),
    ("app == 'web'", Eq("app", "web"), True),
    ('app=="db"', Eq("app", "db"), False),
    ('missing == ""', Eq("missing", ""), False),
    ('app != "db"', Ne("app", "db"), True),
    ('app != "web"', Ne("app", "web"), False),
    ('missing != "x"', Ne("missing", "x"), True),
    ('app in {"db", "web"}', In("app", frozenset({"db", "web"})), True),
    ('app in {"db"}', In("app", frozenset({"db"})), False),
    ("app in {}", In("app", frozenset()), False),
    ('missing in {"x"}', In("missing", frozenset({"x"})), False),
    ('app not in {"db"}', NotIn("app", frozenset({"db"})), True),
    ('app not in {"web"}', NotIn("app", frozenset({"web"})), False),
    ('missing not in {"x"}', NotIn("missing", frozenset({"x"})), True),
    ('app notin {"x"}', NotIn("app", frozenset({"x"})), True),
    ('tier contains "nt-e"', Contains("tier", "nt-e"), True),
    ('tier contains "back"', Contains("tier", "back"), False),
    ('missing contains ""', Contains("missing", ""), False),
    ('tier starts with "front"', StartsWith("tier", "front"), True),
    ('tier startswith "end"', StartsWith("tier", "end"), False),
    ('tier ends with "end"', EndsWith("tier", "end"), True),
    ('tier ends  with "front"', EndsWith("tier", "front"), False),
    ('projectcalico.org/name == "n1"', Eq("projectcalico.org/name", "n1"), True),
    ('a_b-c.d/e-f == "x"', Eq("a_b-c.d/e-f", "x"), False),
    ("(has(app))", Has("app"), True),
    ('has(app) && env == "prod"', And((Has("app"), Eq("env", "prod"))), True),
    ('has(app) && env == "dev"', And((Has("app"), Eq("env", "dev"))), False),
    ('has(x) || env == "prod"', Or((Has("x"), Eq("env", "prod"))), True),
    ("has(x) || has(y)", Or((Has("x"), Has("y"))), False),
    ("has(a) && has(b) && has(c)", And((Has("a"), Has("b"), Has("c"))), False),
    # && binds tighter than ||
    ("has(app) || has(x) && has(y)", Or((Has("app"), And((Has("x"), Has("y"))))), True),
    ("has(x) && has(y) || has(app)", Or((And((Has("x"), Has("y"))), Has("app"))), True),
    ("(has(app) || has(x)) && has(y)", And((Or((Has("app"), Has("x"))), Has("y"))), False),
    ("!(has(x) || has(app))", Not(Or((Has("x"), Has("app")))), False),
    ("!!has(app)", Not(Not(Has("app"))), True),
    ('!app == "web"', Not(Eq("app", "web")), False),
    # keywords are plain label keys where a key is expected
    ('in == "x"', Eq("in", "x"), False),
    ('has == "x"', Eq("has", "x"), False),
    ('not in {"x"}', In("not", frozenset({"x"})), False),
    ("a == 'say \"hi\"'", Eq("a", 'say "hi"'), False),
    ('a == "it\'s"', Eq("a", "it's"), False),
    ("a == '&& || ( ) !'", Eq("a", "&& || ( ) !"), False),
]


@pytest.mark.parametrize(("text", "ast", "value"), CASES, ids=[c[0] or "<empty>" for c in CASES])
def test_parse_and_evaluate(text: str, ast: sel.Selector, value: bool) -> None:
    parsed = sel.parse(text)
    assert parsed == ast
    assert parsed.evaluate(LABELS) is value
    assert sel.parse(str(parsed)) == parsed


CANONICAL = [
    ("", "all()"),
    ("app=='web'", 'app == "web"'),
    ("a in {'z','a','z'}", 'a in {"a", "z"}'),
    ("has(a)&&has(b)||!has(c)", "((has(a) && has(b)) || !has(c))"),
    ("a == 'x\"y'", "a == 'x\"y'"),
    ("k startswith 'p'", 'k starts with "p"'),
    ("k not   in {}", "k not in {}"),
    ("(has(a) && has(b)) && has(c)", "((has(a) && has(b)) && has(c))"),
]


@pytest.mark.parametrize(("text", "canonical"), CANONICAL)
def test_canonical_form(text: str, canonical: str) -> None:
    assert str(sel.parse(text)) == canonical


ERRORS = [
    ('a = "b"', 2, "expected an operator"),
    ("a == ", 5, "expected a quoted string"),
    ("a == b", 5, "expected a quoted string"),
    ('a == "b', 5, "unterminated string"),
    ("a == 'b\"", 5, "unterminated string"),
    ('(a == "b"', 9, "expected ')'"),
    ('a == "b")', 8, "expected '&&', '||' or end"),
    ("has(a", 5, "expected ')' to close has("),
    ("has()", 4, "expected a label key"),
    ("has(a b)", 6, "expected ')'"),
    ("all(x)", 4, "expected ')' to close all("),
    ('a in {"x",}', 10, "expected a quoted string"),
    ('a in {"x" "y"}', 10, "expected ',' or '}'"),
    ('a in "x"', 5, "expected '{'"),
    ('a == "b" c', 9, "expected '&&', '||' or end"),
    ("&& has(a)", 0, "expected a label key"),
    ("has(a) ||", 9, "expected a label key"),
    ("has(a) & has(b)", 7, "expected '&&', '||' or end"),
    ("!", 1, "expected a label key"),
    ("a", 1, "expected an operator"),
    ("a b", 2, "expected an operator"),
    ("a ~= 'x'", 2, "expected an operator"),
    ("a inx {'x'}", 2, "expected an operator"),
    ("k" * 513 + " == 'x'", 0, "longer than 512"),
    ("é == 'x'", 0, "expected a label key"),
]


@pytest.mark.parametrize(("text", "position", "reason"), ERRORS, ids=[e[0][:40] for e in ERRORS])
def test_error_position(text: str, position: int, reason: str) -> None:
    with pytest.raises(sel.SelectorError) as exc:
        sel.parse(text)
    err = exc.value
    assert err.position == position
    assert reason in err.reason
    assert isinstance(err, ValidationError)
    # The message shows the text and a caret under the offending character.
    lines = str(err).splitlines()
    assert lines[-2] == "  " + text
    assert lines[-1] == "  " + " " * position + "^"
    assert f"position {position}" in lines[0]


def test_error_attributed_to_field_and_document() -> None:
    with pytest.raises(sel.SelectorError) as exc:
        sel.parse("has(")
    err = exc.value.at("spec.nodeSelector", "pools.yaml[1] IPPool 'p1'")
    assert err.errors[0].path == "spec.nodeSelector"
    assert err.position == 4
    assert str(err).startswith("pools.yaml[1] IPPool 'p1': spec.nodeSelector: invalid selector")


def test_key_of_512_chars_accepted() -> None:
    key = "k" * 512
    assert sel.parse(f"has({key})") == Has(key)


def test_ast_rejects_values_that_cannot_be_written() -> None:
    with pytest.raises(sel.SelectorError):
        Eq("a", "both ' and \"")
    with pytest.raises(sel.SelectorError):
        Has("bad key")
    with pytest.raises(ValueError):
        And((Has("a"),))


def test_ast_is_hashable_and_frozen() -> None:
    a = sel.parse('a in {"x", "y"} && has(b)')
    b = sel.parse("has(b) && a in {'y','x'}")
    assert a != b  # operand order is kept (Calico keeps it too)
    assert len({a, sel.parse(str(a))}) == 1
    with pytest.raises(AttributeError):
        a.operands = ()  # type: ignore[misc]


def test_label_keys_and_global() -> None:
    s = sel.parse("has(a) && (b == 'x' || !c in {'y'}) && global()")
    assert s.label_keys() == {"a", "b", "c"}
    assert s.has_global()
    assert not sel.parse("has(a)").has_global()


def test_deep_nesting_is_an_error_not_a_crash() -> None:
    assert sel.parse("!" * 100 + "has(a)").evaluate({}) is False
    assert sel.parse("(" * 100 + "has(a)" + ")" * 100) == Has("a")
    for text, at in (("!" * 101 + "has(a)", 100), ("(" * 5000 + "has(a)" + ")" * 5000, 100),
                     ("!(" * 60 + "has(a)" + ")" * 60, 100)):
        with pytest.raises(sel.SelectorError) as exc:
            sel.parse(text)
        assert exc.value.position == at
        assert "nested deeper than 100" in exc.value.reason
