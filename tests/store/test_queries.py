"""The store's named queries: every dialect has every statement, the files parse, list filters compose."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from otlp_gateway.store import sql_store
from otlp_gateway.store.queries import DIALECTS, WHERE_SLOT, QueryFileError, load_queries, parse_queries


def test_every_query_of_one_dialect_exists_in_the_other() -> None:
    postgres, sqlite = (load_queries(d) for d in DIALECTS)
    assert postgres.public == sqlite.public
    assert len(postgres.public) >= 30


@pytest.mark.parametrize("dialect", DIALECTS)
def test_private_queries_belong_to_their_own_dialect(dialect: str) -> None:
    queries = load_queries(dialect)  # type: ignore[arg-type]
    for name in set(queries) - queries.public:
        assert name.startswith(f"{dialect}.")


@pytest.mark.parametrize("dialect", DIALECTS)
def test_list_queries_have_a_where_slot_and_their_conditions(dialect: str) -> None:
    queries = load_queries(dialect)  # type: ignore[arg-type]
    with_slot = {name for name in queries if WHERE_SLOT in queries[name]}
    assert with_slot == {"query_anomalies", "query_audit", "query_incidents"}
    conditions = {name for name in queries if "_where_" in name}
    assert {name.split("_where_")[0] for name in conditions} == {"anomalies", "audit", "incidents"}
    sql = queries.with_where("query_anomalies", ["anomalies_where_stream_id", "anomalies_where_before"])
    assert WHERE_SLOT not in sql and sql.count(" AND ") == 1 and "WHERE (stream_id" in sql
    assert "WHERE" not in queries.with_where("query_audit", [])


def test_every_query_the_store_class_names_exists() -> None:
    source = Path(sql_store.__file__).read_text()
    named = set(re.findall(r'_(?:fetch|execute)\("([a-z_]+)"', source))
    named |= set(re.findall(r'with_where\("([a-z_]+)"', source))
    named |= set(re.findall(r'_q\["([a-z_]+)"\]', source))
    named |= {"insert_anomalies", "prune_streams", "prune_states", "prune_scores"}
    named |= {f"anomalies_where_{f}" for f in sql_store._ANOMALY_EQUALITY_FILTERS}
    named |= {f"incidents_where_{f}" for f in sql_store._INCIDENT_EQUALITY_FILTERS}
    named |= {"incidents_where_since", "incidents_where_until", "incidents_where_after"}
    assert len(named) > 20
    for dialect in DIALECTS:
        assert named <= set(load_queries(dialect))  # type: ignore[arg-type]


@pytest.mark.parametrize(("text", "message"), [
    ("-- name: a\nSELECT 1\n-- name: a\nSELECT 2\n", "defined twice"),
    ("-- name: a\n-- only a comment\n", "is empty"),
    ("-- name: postgres.copy\nCOPY x FROM STDIN\n", "another dialect"),
    ("-- name: Bad-Name\nSELECT 1\n", "bad query name"),
])
def test_malformed_query_files_are_refused(text: str, message: str) -> None:
    with pytest.raises(QueryFileError, match=message):
        parse_queries("sqlite", text)


def test_sections_keep_their_text_without_the_trailing_semicolon() -> None:
    text = "-- header\n\n-- name: one\n-- why\nSELECT 1;\n\n-- name: two\nSELECT 2\n"
    queries = parse_queries("sqlite", text)
    assert dict(queries) == {"one": "-- why\nSELECT 1", "two": "SELECT 2"}
