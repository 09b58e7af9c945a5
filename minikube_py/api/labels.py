"""Label selectors: the string form (`?labelSelector=`) and the object form
(`spec.selector` with matchLabels/matchExpressions), reduced to one list of
requirements so that matching has a single implementation.
"""

import re
from dataclasses import dataclass
from typing import Any

_TOKEN = re.compile(r"\s*(!=|==|=|\(|\)|,|!|[^\s!=(),]+)")


class SelectorError(ValueError):
    pass


@dataclass(frozen=True)
class Requirement:
    key: str
    operator: str  # In, NotIn, Exists, DoesNotExist
    values: tuple[str, ...] = ()

    def matches(self, labels: dict[str, str]) -> bool:
        if self.operator == "Exists":
            return self.key in labels
        if self.operator == "DoesNotExist":
            return self.key not in labels
        if self.operator == "In":
            return self.key in labels and labels[self.key] in self.values
        if self.operator == "NotIn":
            return labels.get(self.key) not in self.values
        raise SelectorError(f"unknown operator {self.operator!r}")


Selector = list[Requirement]


def matches(selector: Selector, labels: dict[str, str] | None) -> bool:
    labels = labels or {}
    return all(r.matches(labels) for r in selector)


def parse(text: str) -> Selector:
    """Parse `app=web,tier!=db,env in (a,b),!legacy` into requirements."""
    tokens = [t for t in _TOKEN.findall(text or "") if t]
    reqs: Selector = []
    i = 0

    def take() -> str:
        nonlocal i
        if i >= len(tokens):
            raise SelectorError(f"unexpected end of selector {text!r}")
        i += 1
        return tokens[i - 1]

    while i < len(tokens):
        tok = take()
        if tok == "!":
            reqs.append(Requirement(take(), "DoesNotExist"))
        elif i < len(tokens) and tokens[i] in ("=", "==", "!="):
            op = take()
            value = tokens[i] if i < len(tokens) and tokens[i] != "," else ""
            if value:
                i += 1
            reqs.append(Requirement(tok, "NotIn" if op == "!=" else "In", (value,)))
        elif i < len(tokens) and tokens[i] in ("in", "notin"):
            op = take()
            if take() != "(":
                raise SelectorError(f"expected '(' after {op} in {text!r}")
            values: list[str] = []
            while True:
                t = take()
                if t == ")":
                    break
                if t != ",":
                    values.append(t)
            reqs.append(Requirement(tok, "In" if op == "in" else "NotIn", tuple(values)))
        else:
            reqs.append(Requirement(tok, "Exists"))
        if i < len(tokens):
            if tokens[i] != ",":
                raise SelectorError(f"unexpected {tokens[i]!r} in selector {text!r}")
            i += 1
    return reqs


def from_label_selector(sel: dict[str, Any] | None) -> Selector:
    """A metav1.LabelSelector. None selects nothing, {} selects everything (as in
    Kubernetes' LabelSelectorAsSelector)."""
    if sel is None:
        return [Requirement("", "In", ())]  # matches no object
    reqs: Selector = [
        Requirement(k, "In", (str(v),)) for k, v in (sel.get("matchLabels") or {}).items()
    ]
    for expr in sel.get("matchExpressions") or []:
        reqs.append(Requirement(expr["key"], expr["operator"], tuple(expr.get("values") or ())))
    return reqs


def from_map(sel: dict[str, str] | None) -> Selector:
    """A Service's plain `spec.selector` map."""
    return [Requirement(k, "In", (v,)) for k, v in (sel or {}).items()]
