"""DARTS' `Genotype(...)` string, the form DARTS, pycls (NDS) and most cell-search code print.

    Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ...], normal_concat=[2, 3, 4, 5],
             reduce=[('max_pool_3x3', 0), ...], reduce_concat=[2, 3, 4, 5])

Each cell lists two (operation, input) pairs per block (DARTS' intermediate node), whose results
are added; inputs 0 and 1 are the cell inputs, 2, 3, ... earlier blocks. `*_concat` lists the
states the cell's output concatenates: a list, or `range(2, 6)` as DARTS' `genotypes.py` writes
it. DARTS' recurrent cells have their own `Genotype(recurrent=[(activation, input), ...],
concat=range(1, 9))` (`read_recurrent_genotype`). The text is read with Python's parser, never
evaluated.
"""

import ast
import re

from nasbox.errors import NasboxError
from nasbox.spaces.nasnet import Block, CellGenotype, NASNetGenotype

FIELDS = ("normal", "normal_concat", "reduce", "reduce_concat")
SHAPE = (
    "Genotype(normal=[('op', input), ...], normal_concat=[2, 3, 4, 5], reduce=[...], "
    "reduce_concat=[...])"
)
RECURRENT_FIELDS = ("recurrent", "concat")
RECURRENT_SHAPE = "Genotype(recurrent=[('activation', input), ...], concat=range(1, 9))"
_START = re.compile(r"^\s*(?:[A-Za-z_][\w.]*\.)?Genotype\s*\(")
# Any cell has far fewer states; a longer range is a typo, not a cell.
_MAX_CONCAT = 64
_PARSE_ERRORS = (SyntaxError, ValueError, TypeError, MemoryError, RecursionError, OverflowError)


def looks_like_genotype(text: str) -> bool:
    """Whether `text` is meant as a Genotype string (so its errors should be about that form)."""
    return _START.match(text) is not None


def _snippet(text: str, node: ast.AST) -> str:
    segment = ast.get_source_segment(text, node) or ""
    return segment if len(segment) <= 40 else segment[:37] + "..."


def _fields(
    text: str, what: str, names: tuple[str, ...] = FIELDS, shape: str = SHAPE
) -> dict[str, ast.expr]:
    """The fields `names` of the Genotype call, positional or by keyword, as unevaluated nodes."""
    try:
        call = ast.parse(text.strip(), mode="eval").body
    except _PARSE_ERRORS:
        call = None
    if not isinstance(call, ast.Call) or not looks_like_genotype(text):
        shown = text.strip()
        shown = shown if len(shown) <= 40 else shown[:37] + "..."
        raise NasboxError(f"malformed {what} {shown!r}: expected {shape}")
    if len(call.args) > len(names):
        raise NasboxError(f"{what} has {len(call.args)} fields; a Genotype has {len(names)}")
    fields = dict(zip(names, call.args, strict=False))
    for keyword in call.keywords:
        if keyword.arg not in names:
            raise NasboxError(
                f"{what}: unknown field {keyword.arg!r}; a Genotype has {', '.join(names)}"
            )
        if keyword.arg in fields:
            raise NasboxError(f"{what} gives {keyword.arg} twice")
        fields[keyword.arg] = keyword.value
    missing = [name for name in names if name not in fields]
    if missing:
        raise NasboxError(f"{what} has no {missing[0]}; expected {shape}")
    return fields


def _literal(node: ast.expr):
    try:
        return ast.literal_eval(node)
    except _PARSE_ERRORS:
        return None


def _pairs(text: str, node: ast.expr, kind: str, example: str) -> list[tuple[str, int]]:
    """The ('op', input) pairs of a cell field; `example` shows the expected form."""
    pairs = _literal(node)
    well_formed = isinstance(pairs, list | tuple) and all(
        isinstance(pair, tuple)
        and len(pair) == 2
        and isinstance(pair[0], str)
        and type(pair[1]) is int
        for pair in pairs
    )
    if not well_formed:
        raise NasboxError(
            f"{kind} cell: {_snippet(text, node)!r} must be a list of ('op', input) pairs "
            f"like {example}"
        )
    return list(pairs)


def _blocks(text: str, node: ast.expr, kind: str) -> tuple[Block, ...]:
    pairs = _pairs(text, node, kind, "[('sep_conv_3x3', 0), ('skip_connect', 1)]")
    if len(pairs) % 2:
        raise NasboxError(f"{kind} cell lists {len(pairs)} (op, input) pairs; each block takes two")
    return tuple(
        Block((first[1], second[1]), (first[0], second[0]))
        for first, second in zip(pairs[::2], pairs[1::2], strict=True)
    )


def _concat(text: str, node: ast.expr, field: str, example: str = "range(2, 6)") -> tuple[int, ...]:
    problem = f"{field} {_snippet(text, node)!r} must list states like [2, 3, 4, 5]"
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "range":
        bounds = [_literal(arg) for arg in node.args]
        if node.keywords or not 1 <= len(bounds) <= 3 or any(type(b) is not int for b in bounds):
            raise NasboxError(f"{problem} or {example}")
        try:
            states = range(*bounds)
        except ValueError:
            raise NasboxError(f"{problem} or {example}") from None
        if len(states) > _MAX_CONCAT:
            raise NasboxError(f"{problem}; range(...) gives {len(states)} states")
        return tuple(states)
    states = _literal(node)
    if not isinstance(states, list | tuple) or any(type(state) is not int for state in states):
        raise NasboxError(f"{problem} or {example}")
    return tuple(states)


def read_genotype(text: str, what: str = "genotype") -> NASNetGenotype:
    """The cells a Genotype string describes; the form only (the caller checks ops and inputs).

    `what` names the string in errors (`darts genotype`).
    """
    fields = _fields(text, what)
    cells = [
        CellGenotype(
            _blocks(text, fields[kind], kind),
            _concat(text, fields[f"{kind}_concat"], f"{kind}_concat"),
        )
        for kind in ("normal", "reduce")
    ]
    return NASNetGenotype(*cells)


def read_recurrent_genotype(
    text: str, what: str = "rnn genotype"
) -> tuple[list[tuple[str, int]], tuple[int, ...]]:
    """The (activation, input) pairs and the averaged states of DARTS' recurrent Genotype,
    `Genotype(recurrent=[('sigmoid', 0), ...], concat=range(1, 9))`; the form only."""
    fields = _fields(text, what, RECURRENT_FIELDS, RECURRENT_SHAPE)
    pairs = _pairs(text, fields["recurrent"], "recurrent", "[('sigmoid', 0), ('relu', 1)]")
    return pairs, _concat(text, fields["concat"], "concat", "range(1, 9)")


def _cell_pairs(cell: CellGenotype) -> str:
    if any(block.combine != "add" for block in cell.blocks):
        raise ValueError("a Genotype string has no concatenating blocks; use the nasnet form")
    return ", ".join(
        f"({op!r}, {index})"
        for block in cell.blocks
        for op, index in zip(block.ops, block.inputs, strict=True)
    )


def format_genotype(genotype: NASNetGenotype) -> str:
    """The Genotype string of `genotype`, as Python prints DARTS' namedtuple."""
    normal, reduce = genotype.normal, genotype.reduce
    return (
        f"Genotype(normal=[{_cell_pairs(normal)}], normal_concat={list(normal.outputs)}, "
        f"reduce=[{_cell_pairs(reduce)}], reduce_concat={list(reduce.outputs)})"
    )
