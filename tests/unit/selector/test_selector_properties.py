"""Property tests: random ASTs round-trip through text and agree with a reference evaluator.

The reference evaluator is built alongside each generated AST from plain lambdas that spell
out Calico's semantics; it shares no code with libcalico.model.selector.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from hypothesis import given, settings
from hypothesis import strategies as st

from libcalico.model import selector as sel

Labels = Mapping[str, str]
Ref = Callable[[Labels], bool]

KEYS = st.sampled_from(["a", "b", "app", "in", "has", "not", "x.io/role", "k-1_2", "all"])
VALUES = st.sampled_from(["", "v", "w", "web", "we", "eb", "it's", 'say "hi"', "a b", "&&"])
LABELS = st.dictionaries(KEYS, VALUES, max_size=5)


def _leaf() -> st.SearchStrategy[tuple[sel.Selector, Ref]]:
    def has(k: str) -> tuple[sel.Selector, Ref]:
        return sel.Has(k), lambda lab: k in lab

    def cmp(k: str, v: str, op: str) -> tuple[sel.Selector, Ref]:
        refs: dict[str, tuple[type[sel.Selector], Ref]] = {
            "eq": (sel.Eq, lambda lab: k in lab and lab[k] == v),
            "ne": (sel.Ne, lambda lab: k not in lab or lab[k] != v),
            "contains": (sel.Contains, lambda lab: k in lab and lab[k].find(v) >= 0),
            "starts": (sel.StartsWith, lambda lab: k in lab and lab[k][: len(v)] == v),
            "ends": (sel.EndsWith,
                     lambda lab: k in lab and len(lab[k]) >= len(v)
                     and lab[k][len(lab[k]) - len(v):] == v),
        }
        cls, ref = refs[op]
        return cls(k, v), ref  # type: ignore[call-arg]

    def inset(k: str, vs: frozenset[str], neg: bool) -> tuple[sel.Selector, Ref]:
        if neg:
            return sel.NotIn(k, vs), lambda lab: not (k in lab and lab[k] in list(vs))
        return sel.In(k, vs), lambda lab: k in lab and lab[k] in list(vs)

    return st.one_of(
        st.just((sel.All(), lambda lab: True)),
        st.just((sel.Global(), lambda lab: True)),
        st.builds(has, KEYS),
        st.builds(cmp, KEYS, VALUES,
                  st.sampled_from(["eq", "ne", "contains", "starts", "ends"])),
        st.builds(inset, KEYS, st.frozensets(VALUES, max_size=3), st.booleans()),
    )


def _extend(
    children: st.SearchStrategy[tuple[sel.Selector, Ref]],
) -> st.SearchStrategy[tuple[sel.Selector, Ref]]:
    def neg(c: tuple[sel.Selector, Ref]) -> tuple[sel.Selector, Ref]:
        node, ref = c
        return sel.Not(node), lambda lab: not ref(lab)

    def conj(cs: list[tuple[sel.Selector, Ref]]) -> tuple[sel.Selector, Ref]:
        refs = [r for _, r in cs]

        def ref(lab: Labels) -> bool:
            return all(r(lab) for r in refs)

        return sel.And(tuple(n for n, _ in cs)), ref

    def disj(cs: list[tuple[sel.Selector, Ref]]) -> tuple[sel.Selector, Ref]:
        refs = [r for _, r in cs]

        def ref(lab: Labels) -> bool:
            return any(r(lab) for r in refs)

        return sel.Or(tuple(n for n, _ in cs)), ref

    many = st.lists(children, min_size=2, max_size=4)
    return st.one_of(st.builds(neg, children), st.builds(conj, many), st.builds(disj, many))


TREES = st.recursive(_leaf(), _extend, max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(TREES)
def test_str_parse_round_trip_is_identity(tree: tuple[sel.Selector, Ref]) -> None:
    node, _ = tree
    assert sel.parse(str(node)) == node


@settings(max_examples=300, deadline=None)
@given(TREES, st.lists(LABELS, min_size=1, max_size=8))
def test_evaluate_agrees_with_reference(tree: tuple[sel.Selector, Ref],
                                        label_sets: list[dict[str, str]]) -> None:
    node, ref = tree
    for labels in label_sets:
        assert node.evaluate(labels) is ref(labels), (str(node), labels)


@settings(max_examples=200, deadline=None)
@given(TREES, TREES, LABELS)
def test_de_morgan(t1: tuple[sel.Selector, Ref], t2: tuple[sel.Selector, Ref],
                   labels: dict[str, str]) -> None:
    a, b = str(t1[0]), str(t2[0])
    not_and = sel.parse(f"!({a} && {b})")
    or_nots = sel.parse(f"!{a} || !{b}")
    not_or = sel.parse(f"!({a} || {b})")
    and_nots = sel.parse(f"!{a} && !{b}")
    assert not_and.evaluate(labels) == or_nots.evaluate(labels)
    assert not_or.evaluate(labels) == and_nots.evaluate(labels)


def _render(node: sel.Selector, draw: st.DrawFn) -> str:
    """A non-canonical but equivalent spelling: random spacing, quotes, redundant parens."""
    ws = draw(st.sampled_from(["", " ", "  ", "\t", "\n "]))
    if isinstance(node, sel.And | sel.Or):
        op = " && " if isinstance(node, sel.And) else " || "
        parts = [_render(c, draw) for c in node.operands]
        # A nested group of the same operator, or an Or inside an And, needs parentheses;
        # everything else may carry them or not.
        wrapped = []
        for c, text in zip(node.operands, parts, strict=True):
            need = isinstance(c, sel.And | sel.Or) and (
                type(c) is type(node) or isinstance(c, sel.Or))
            wrapped.append(f"({text})" if need or draw(st.booleans()) else text)
        return ws + op.strip().join(f"{ws}{w}{ws}" for w in wrapped)
    if isinstance(node, sel.Not):
        inner = _render(node.operand, draw)
        return f"!{ws}({inner})" if isinstance(node.operand, sel.And | sel.Or) else f"!{inner}"
    if isinstance(node, sel.Has):
        return f"has({ws}{node.key}{ws})"
    if isinstance(node, sel.All | sel.Global):
        return str(node).replace("()", f"({ws})")

    def q(v: str) -> str:
        if '"' in v:
            return f"'{v}'"
        if "'" in v:
            return f'"{v}"'
        return draw(st.sampled_from([f'"{v}"', f"'{v}'"]))

    if isinstance(node, sel.In | sel.NotIn):
        op = "in" if isinstance(node, sel.In) else draw(st.sampled_from(["not in", "notin"]))
        vals = list(node.values) * draw(st.sampled_from([1, 2]))  # duplicates collapse
        return f"{node.key}{ws} {op} {{{ws}{(',' + ws).join(q(v) for v in vals)}{ws}}}"
    assert isinstance(node, sel.Eq | sel.Ne | sel.Contains | sel.StartsWith | sel.EndsWith)
    op = {sel.Eq: "==", sel.Ne: "!=", sel.Contains: " contains ",
          sel.StartsWith: draw(st.sampled_from([" starts with ", " startswith "])),
          sel.EndsWith: " ends with "}[type(node)]
    return f"{node.key}{ws}{op}{ws}{q(node.value)}"


@settings(max_examples=300, deadline=None)
@given(TREES, st.data())
def test_any_spelling_parses_to_the_same_ast(tree: tuple[sel.Selector, Ref],
                                             data: st.DataObject) -> None:
    node, _ = tree
    text = _render(node, data.draw)
    assert sel.parse(text) == node, text
