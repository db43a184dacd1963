"""The column-wise `records_to_table` writes exactly the bytes of the row-wise conversion it replaced."""

import pyarrow as pa
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from builders.schema import (
    RECORD_SCHEMA,
    Provenance,
    Record,
    content_id,
    records_to_table,
)

FIELDS = ("distribution", "prompt", "responses", "preferred", "group", "provenance", "template", "instruction",
          "input", "meta")

texts = st.text(min_size=1, max_size=30)
optional = st.none() | texts
meta_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | texts,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=6,
)


@st.composite
def records(draw) -> Record:
    responses = draw(st.lists(texts, min_size=2, max_size=4, unique=True))
    return Record(
        distribution=draw(texts),
        prompt=draw(texts),
        responses=responses,
        preferred=draw(st.integers(0, len(responses) - 1)),
        group=draw(texts),
        provenance=Provenance(
            source=draw(texts), revision=draw(optional), row_key=draw(optional), llm_model=draw(optional),
            llm_requests=tuple(draw(st.lists(texts, max_size=3))),
        ),
        template=draw(st.just("") | texts),
        instruction=draw(optional),
        input=draw(optional),
        meta=draw(st.dictionaries(texts, meta_values, max_size=4)),
    )


def ipc_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


@settings(max_examples=60, deadline=None)
@given(st.lists(records(), max_size=12))
def test_columnar_table_is_byte_identical_to_the_row_wise_one(batch):
    rows = pa.Table.from_pylist([r.to_row() for r in batch], schema=RECORD_SCHEMA)
    columnar = records_to_table(batch)
    assert columnar.schema == RECORD_SCHEMA
    assert columnar.to_pylist() == rows.to_pylist()
    assert ipc_bytes(columnar) == ipc_bytes(rows)


@settings(max_examples=40, deadline=None)
@given(records(), st.sampled_from(["prompt", "response", "preferred", "distribution"]), texts)
def test_an_edited_record_gets_the_id_and_problems_of_its_new_content(record, edit, text):
    """The id and problems are computed once per content, so an edit after asking must recompute both."""
    assert record.id == content_id(record.distribution, record.prompt, record.responses, record.preferred)
    assume(record.problems() == [])
    if edit == "prompt":
        record.prompt = text + record.prompt
    elif edit == "response":
        record.responses[-1] = record.responses[0]  # edited in place: now a duplicate
    elif edit == "preferred":
        record.preferred = len(record.responses)
    else:
        record.distribution = record.distribution + text
    fresh = Record(**{name: getattr(record, name) for name in FIELDS})
    assert record.problems() == fresh.problems()
    assert bool(record.problems()) == (edit in ("response", "preferred"))
    if edit != "preferred":
        assert record.id == fresh.id
        assert record.with_order(list(range(len(record.responses)))[::-1]).id == fresh.id
