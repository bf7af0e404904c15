"""Every parser either parses its input or raises NasboxError: never another exception.

Hypothesis feeds arbitrary text and bytes plus near-misses built from the real vocabulary
(operation names, separators, numbers), which reach much deeper into each parser.
"""

import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nasbox.benchmarks import TabularBenchmark
from nasbox.cli.common import read_text_lines
from nasbox.data import load_data, load_npz
from nasbox.errors import NasboxError
from nasbox.estimators import EstimatorContext, get_estimator
from nasbox.estimators.petri import get_motif_space
from nasbox.estimators.petri.evaluation import load_labels
from nasbox.spaces import get_space
from nasbox.spaces.nasnet import OPS as NASNET_OPS
from nasbox.spaces.nb201 import OPS as NB201_OPS
from nasbox.strategies import STRATEGIES

PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NB201 = get_space("nb201")
NASNET = get_space("nasnet")


def parses_or_refuses(parse, value):
    """Call `parse`; a NasboxError is a fine answer, anything else fails the test."""
    try:
        return parse(value)
    except NasboxError as err:
        assert "\n" not in str(err), "an error message must be one line"
        return None


def tokens(vocabulary):
    """Text made of the parser's own words and separators, so near-misses are common."""
    pieces = st.sampled_from([*vocabulary, "~", "|", "+", ";", ":", ",", "&", "->", " ", "{"])
    numbers = st.integers(-3, 12).map(str)
    return st.lists(st.one_of(pieces, numbers, st.text(max_size=3)), max_size=40).map("".join)


@PROPERTY
@given(st.one_of(st.text(), tokens(NB201_OPS)))
def test_nb201_cell_strings(text):
    cell = parses_or_refuses(NB201.parse, text)
    if cell is not None:
        assert NB201.parse(NB201.format(cell)) == cell


@PROPERTY
@given(st.one_of(st.text(), tokens([*NASNET_OPS, "normal", "reduce", "nasnet-a"])))
def test_nasnet_genotype_strings(text):
    genotype = parses_or_refuses(NASNET.parse, text)
    if genotype is not None:
        assert NASNET.parse(NASNET.format(genotype)) == genotype


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 12) | st.sampled_from(NASNET_OPS) | st.text(),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(["normal", "reduce", "blocks", "inputs", "ops", "combine", "concat"]),
            children,
            max_size=5,
        )
    ),
    max_leaves=20,
)


@PROPERTY
@given(json_values)
def test_nasnet_genotype_json(value):
    import json

    parses_or_refuses(NASNET.parse, json.dumps(value) if isinstance(value, dict) else "{")


@PROPERTY
@given(st.sampled_from(["slope", "nb201"]), st.one_of(st.text(), tokens(NB201_OPS)))
def test_petri_motif_strings(space, text):
    parses_or_refuses(get_motif_space(space).parse, text)


@PROPERTY
@given(st.one_of(st.text(), st.sampled_from(["digits", "cifar10", "npz:", "npz:/", "npz"])))
def test_data_specs(spec):
    parses_or_refuses(lambda value: load_data(value, None), spec)


@PROPERTY
@given(
    st.one_of(
        st.text(),
        st.builds(
            "{}:{}".format,
            st.sampled_from(["naswot", "jacov", "params", "flops", "table", "petri", "train"]),
            st.one_of(st.text(max_size=8), st.integers(-2, 3).map(str)),
        ),
    )
)
def test_estimator_specs(spec):
    parses_or_refuses(lambda value: get_estimator(value, EstimatorContext(NB201)), spec)


@PROPERTY
@given(st.text())
def test_strategy_names(name):
    parses_or_refuses(STRATEGIES.get, name)


def _with_file(suffix: str, content: bytes, read):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"input{suffix}"
        path.write_bytes(content)
        return parses_or_refuses(read, path)


table_text = st.lists(
    st.lists(
        st.one_of(
            st.sampled_from(
                [
                    "arch",
                    "valid_acc",
                    "",
                    "nan",
                    "1.5",
                    "x",
                    '"',
                    NB201.format(NB201.parse("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|")),
                ]
            ),
            st.text(max_size=5),
        ),
        max_size=4,
    ).map(",".join),
    max_size=5,
).map(lambda rows: "\n".join(rows).encode())


@PROPERTY
@given(st.sampled_from([".csv", ".parquet", ".txt"]), st.one_of(st.binary(), table_text))
def test_table_files(suffix, content):
    _with_file(suffix, content, TabularBenchmark.from_file)


@PROPERTY
@given(st.sampled_from(["slope", "nb201"]), st.one_of(st.binary(), table_text))
def test_label_files(space, content):
    _with_file(".csv", content, lambda path: load_labels(path, get_motif_space(space)))


@PROPERTY
@given(st.one_of(st.binary(), tokens(NB201_OPS).map(str.encode)))
def test_archs_files(content):
    def read(path):
        return NB201.parse_many(read_text_lines(path, "architectures"), source=str(path))

    _with_file(".txt", content, read)


@PROPERTY
@given(st.binary(max_size=300))
def test_npz_files_of_arbitrary_bytes(content):
    _with_file(".npz", content, load_npz)


arrays = st.sampled_from([np.uint8, np.int64, np.float32, np.bool_]).flatmap(
    lambda dtype: st.lists(st.integers(0, 4), min_size=0, max_size=4).map(
        lambda shape: np.ones(shape, dtype=dtype) * np.array(3).astype(dtype)
    )
)


@PROPERTY
@given(
    st.dictionaries(
        st.sampled_from(["x_train", "y_train", "x_test", "y_test", "other"]), arrays, max_size=5
    ),
    st.integers(-2, 2**40),
)
def test_npz_files_of_arbitrary_arrays(named_arrays, label):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "data.npz"
        if "y_train" in named_arrays and named_arrays["y_train"].size:
            named_arrays["y_train"].flat[0] = (
                label if named_arrays["y_train"].dtype == np.int64 else 1
            )
        np.savez(path, **named_arrays)
        parses_or_refuses(load_npz, path)


@pytest.mark.parametrize("name", ["nb201", "nasnet"])
def test_round_trip_of_sampled_architectures(name):
    space = get_space(name)
    rng = np.random.default_rng(0)
    for _ in range(20):
        arch = space.sample(rng)
        assert space.parse(space.format(arch)) == arch
