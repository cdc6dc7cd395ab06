"""Python values written as Typst source: literals, identifiers and tables, escaped so that any
text (a caption, a quoted function, a folder name) reaches the compiled report unchanged."""

from __future__ import annotations

import math
import re
from typing import Any, Iterable, Sequence

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def string(text: str) -> str:
    """A Typst string literal holding `text` exactly (quotes, backslashes, newlines, control characters)."""
    out = []
    for char in str(text):
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif ord(char) < 32 or ord(char) == 127:
            out.append(f"\\u{{{ord(char):x}}}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def identifier(name: str) -> str:
    """A Typst variable name from any run or figure name: letters, digits and underscores only,
    never starting with a digit (so `kl-none.v2` becomes `kl_none_v2`)."""
    cleaned = re.sub(r"[^A-Za-z0-9_]+", "_", str(name)).strip("_") or "run"
    return cleaned if not cleaned[0].isdigit() else f"run_{cleaned}"


def is_missing(value: Any) -> bool:
    """None and NaN (pandas' empty cell) both read as `none` in Typst."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def value(v: Any, multiline: bool = False) -> str:
    """A Typst literal for a JSON-like Python value (numbers, strings, bools, None/NaN as none,
    lists as arrays, dicts as dictionaries); numpy scalars count as numbers. multiline: a
    dictionary with one key per line, for a reader of the generated file."""
    if hasattr(v, "item") and not isinstance(v, (str, bytes, list, tuple, dict)):
        v = v.item()  # numpy and pandas scalars
    if is_missing(v):
        return "none"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isinf(v):
            return "float.inf" if v > 0 else "-float.inf"
        text = repr(v)
        return text if any(c in text for c in ".e") else text + ".0"
    if isinstance(v, str):
        return string(v)
    if isinstance(v, dict):
        if not v:
            return "(:)"
        items = [f"{k if _IDENT.match(str(k)) else string(str(k))}: {value(x)}" for k, x in v.items()]
        return "(\n  " + ",\n  ".join(items) + ",\n)" if multiline else "(" + ", ".join(items) + ")"
    if isinstance(v, (list, tuple)):
        items = [value(x) for x in v]
        return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"
    return string(str(v))


def let(name: str, expression: str) -> str:
    """`#let name = expression`, a line of a Typst module."""
    return f"#let {name} = {expression}"


def table(header: Sequence[str], rows: Iterable[Sequence[str]], align: Sequence[str] | None = None,
          columns: str | None = None, size: str = "8pt") -> str:
    """A Typst table expression of plain-text cells (each one escaped): a bold header row and a line beneath it."""
    header = list(header)
    align = list(align or ["left"] + ["right"] * (len(header) - 1))
    cells = ["table.header(" + ", ".join(f"strong({string(h)})" for h in header) + ")"]
    for row in rows:
        cells.append(", ".join(f"[#{string(c)}]" for c in row))
    body = ",\n    ".join(cells)
    return (f"text(size: {size}, table(\n    columns: {columns or len(header)},\n    align: ({', '.join(align)},),\n"
            f"    stroke: none, inset: (x: 4pt, y: 2.5pt),\n"
            f"    table.hline(y: 1, stroke: 0.5pt),\n    {body},\n  ))")
