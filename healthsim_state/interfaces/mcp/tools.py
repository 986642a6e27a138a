"""The MCP tools: each one a repository call in a session of its own, a
read-only query through :func:`healthsim_state.store.query.run_query`, or an
export or import of the versioned JSON document (:mod:`healthsim_state.formats.json`).

A tool is a plain function ``(store, **arguments) -> dict`` that returns a
JSON-friendly result; :mod:`healthsim_state.interfaces.mcp.catalog` gives each its
description and argument schema. Tools never keep a session or connection between calls;
:class:`Store` holds only the engines, which for a DuckDB file keep no idle
connection, so another process (the ``healthsim`` CLI) can use the file
between two calls.

Reads go through :meth:`Store.reader`: on a DuckDB file, read-only
connections, which may be open several at a time (the server runs reads side
by side) but never beside this process's read-write one; the server keeps
writes apart from them (:mod:`healthsim_state.interfaces.mcp.server`).
"""

from __future__ import annotations

import io
import json
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import closing, contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy.engine import URL, Engine

from healthsim_models.engine import create_store_engine, resolve_database_url, session_scope
from healthsim_models.errors import InvalidArgumentError
from healthsim_models.registry import entity_type
from healthsim_state.analytics.omop import build_omop, omop_summary
from healthsim_state.analytics.star import DEFAULT_SCHEMA as DEFAULT_STAR_SCHEMA
from healthsim_state.analytics.star import build_star, check_schema_name
from healthsim_state.formats import json as json_document
from healthsim_state.formats.synthea import import_synthea as read_synthea
from healthsim_state.interfaces.rendering import scenario_json
from healthsim_state.store.dialects import dialect_of
from healthsim_state.store.query import Cancellation, json_value, read_only_engine, run_query
from healthsim_state.store.repository import SaveSummary, ScenarioRepository
from healthsim_state.store.transaction import run_in_transaction

T = TypeVar("T")

#: Largest page of scenarios, entities or rows one call returns.
MAX_PAGE = 1000
DEFAULT_PAGE = 100
#: Largest scenario (in entities) export_scenario returns inline rather than writing to a file.
MAX_INLINE_EXPORT = 1000


class Store:
    """The database the tools work on. The engines are created on first use
    (so a server can start while another process holds the file) and kept;
    sessions live for one tool call. Safe to use from several threads."""

    def __init__(self, url: str | URL | None = None) -> None:
        self.url = resolve_database_url(url)
        self._engine: Engine | None = None
        self._reader: Engine | None = None
        self._lock = threading.Lock()

    @property
    def url_text(self) -> str:
        return self.url.render_as_string(hide_password=False)

    @property
    def reads_apart(self) -> bool:
        """Reads need read-only connections of their own (a DuckDB file: they
        cannot be open at once with a writer's connection in one process)."""
        dialect = dialect_of(self.url)
        return dialect.own_read_only_connections and not dialect.in_memory(self.url)

    @property
    def one_connection(self) -> bool:
        """A database only its own engine sees (in-memory DuckDB): one connection, one call at a time."""
        return dialect_of(self.url).in_memory(self.url)

    def engine(self) -> Engine:
        """The store's engine; the first call opens the store and brings it to the latest schema."""
        with self._lock:
            if self._engine is None:
                self._engine = create_store_engine(self.url)
            return self._engine

    def reader_engine(self) -> Engine:
        """The engine reads use: read-only connections on a DuckDB file, else :meth:`engine`."""
        engine = self.engine()  # the file exists, at the latest schema, before it is opened read-only
        if not self.reads_apart:
            return engine
        with self._lock:
            if self._reader is None:
                self._reader = read_only_engine(self.url)
            return self._reader

    def write(self, work: Callable[[ScenarioRepository], T], what: str) -> T:
        """``work(repository)`` in a transaction of its own, committed when it returns
        and run again from the start when it collides with another writer
        (:func:`~healthsim_state.store.transaction.run_in_transaction`): tool arguments
        can always be read again."""
        return run_in_transaction(self.engine(), lambda session: work(ScenarioRepository(session)), what=what)

    @contextmanager
    def reader(self) -> Iterator[ScenarioRepository]:
        """A repository for reading only (see :meth:`reader_engine`)."""
        with session_scope(self.reader_engine()) as session:
            yield ScenarioRepository(session)

    def close(self) -> None:
        with self._lock:
            for engine in (self._reader, self._engine):
                if engine is not None:
                    engine.dispose()
            self._engine = self._reader = None


# -- results as JSON (values rendered as `healthsim query --format json` renders them) ----


def save_json(summary: SaveSummary) -> dict[str, Any]:
    return json_value(
        {
            "id": summary.id,
            "name": summary.name,
            "counts": summary.counts,
            "saved": summary.saved,
            "warnings": summary.warnings,
        }
    )


# -- the tools --------------------------------------------------------------------


def list_scenarios(
    store: Store,
    tag: str | list[str] | None = None,
    search: str | None = None,
    limit: int = DEFAULT_PAGE,
    offset: int = 0,
) -> dict[str, Any]:
    with store.reader() as repo:
        # One more than asked says whether another page exists.
        infos = repo.list(tag=tag, search=search, limit=limit + 1, offset=offset)
    page = infos[:limit]
    return {
        "scenarios": [scenario_json(i) for i in page],
        "offset": offset,
        "next_offset": offset + limit if len(infos) > limit else None,
    }


def load_scenario(
    store: Store, name: str, entity_type: str | None = None, offset: int = 0, limit: int = DEFAULT_PAGE
) -> dict[str, Any]:
    with store.reader() as repo:
        info = repo.scenario_summary(name)
        result: dict[str, Any] = {"scenario": scenario_json(info)}
        if entity_type is None:
            return result
        type_name = _type_name(entity_type)
        total = info.entity_counts.get(type_name, 0)
        # Only the page is fetched and decoded; the database skips what precedes it.
        stream = repo.iter_entities(info.id, type_name, batch_size=limit, offset=offset, limit=limit)
        with closing(stream):
            documents = list(stream)
    end = offset + len(documents)
    result.update(
        entity_type=type_name,
        offset=offset,
        total=total,
        # As the exported document writes them (decimals as JSON numbers), so a page can be saved back.
        entities=[json.loads(json_document.entity_json(doc)) for doc in documents],
        next_offset=end if end < total else None,
    )
    return result


def _type_name(name: str) -> str:
    """The singular name; an unknown name raises the registry's error listing the valid ones."""
    return entity_type(name).name


def save_scenario(
    store: Store,
    name: str,
    entities: Mapping[str, Any],
    description: str | None = None,
    tags: list[str] | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    summary = store.write(
        lambda repo: repo.save(name, entities, description=description, tags=tags, overwrite=overwrite),
        what=f"the save of scenario {name!r}",
    )
    return save_json(summary)


def add_entities(store: Store, name: str, entities: Mapping[str, Any]) -> dict[str, Any]:
    summary = store.write(lambda repo: repo.add_entities(name, entities), what=f"adding to scenario {name!r}")
    return save_json(summary)


def delete_scenario(store: Store, name: str, confirm: bool = False) -> dict[str, Any]:
    if confirm is not True:
        raise InvalidArgumentError(
            f"delete_scenario needs confirm=true to delete {name!r} (the scenario and every entity "
            "no other scenario holds); nothing was deleted"
        )

    def work(repo: ScenarioRepository) -> Any:
        info = repo.scenario_summary(name)
        repo.delete(info.id)
        return info

    return {"deleted": scenario_json(store.write(work, what=f"the deletion of scenario {name!r}"))}


def get_summary(store: Store, name: str | None = None) -> dict[str, Any]:
    with store.reader() as repo:
        if name is not None:
            return {"scenario": scenario_json(repo.scenario_summary(name))}
        counts = repo.count_entities_by_type()
    return {"entity_counts": counts, "total_entities": sum(counts.values())}


def query(
    store: Store,
    sql: str,
    max_rows: int = DEFAULT_PAGE,
    timeout: float | None = None,
    *,
    cancellation: Cancellation | None = None,
) -> dict[str, Any]:
    result = run_query(sql, engine=store.engine(), max_rows=max_rows, timeout=timeout, cancellation=cancellation)
    return {"columns": result.columns, "rows": json_value(result.rows), "truncated": result.truncated}


def export_scenario(store: Store, name: str, path: str | None = None, overwrite: bool = False) -> dict[str, Any]:
    target = None if path is None else _server_path(path)
    if target is not None and target.exists() and not overwrite:
        raise InvalidArgumentError(f"{target} exists; pass overwrite=true to replace it")
    with store.reader() as repo:
        if target is not None:
            return asdict(json_document.export_scenario(repo.session, name, target))
        info = repo.scenario_summary(name)
        total = sum(info.entity_counts.values())
        if total > MAX_INLINE_EXPORT:
            raise InvalidArgumentError(
                f"scenario {info.name!r} holds {total} entities, more than the {MAX_INLINE_EXPORT} returned "
                "inline; give a path to write the document to"
            )
        buffer = io.BytesIO()
        summary = json_document.export_scenario(repo.session, info.id, buffer)
    return {**asdict(summary), "document": buffer.getvalue().decode("utf-8")}


def import_scenario(
    store: Store,
    path: str | None = None,
    document: str | None = None,
    name: str | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    if (path is None) == (document is None):
        raise InvalidArgumentError("import_scenario needs either path or document (not both)")
    target = None if path is None else _server_path(path)

    def work(repo: ScenarioRepository) -> SaveSummary:
        # A fresh source for each run: a run that collided with another writer starts over.
        source: Any = target
        if source is None:
            source = io.BytesIO(document.encode("utf-8"))
            source.name = "the document"  # how the importer's messages will call it
        return json_document.import_scenario(repo.session, source, overwrite=overwrite, name=name)

    summary = store.write(work, what=f"the import of {path or 'the document'}")
    return save_json(summary)


def import_synthea(
    store: Store,
    path: str,
    scenario: str,
    overwrite: bool = False,
    tags: list[str] | None = None,
) -> dict[str, Any]:
    folder = _server_path(path)

    def work(repo: ScenarioRepository) -> Any:
        return read_synthea(repo.session, folder, scenario=scenario, overwrite=overwrite, tags=tags or ())

    return store.write(work, what=f"the import of {path}").as_dict()


def analytics_omop(
    store: Store,
    scenarios: list[str] | None = None,
    schema: str = "omop",
    vocabulary: str | None = None,
) -> dict[str, Any]:
    folder = None if vocabulary is None else _server_path(vocabulary)

    def work(repo: ScenarioRepository) -> Any:
        return build_omop(repo.session, scenarios, schema=schema, vocabulary=folder)

    return store.write(work, what="the OMOP export").as_dict()


def analytics_summary(store: Store, schema: str = "omop", top: int = 10) -> dict[str, Any]:
    with store.reader() as repo:
        return omop_summary(repo.session, schema, top=top)


def _server_path(text: str) -> Path:
    """An absolute path on the server's machine; relative ones are refused, as
    the client cannot know the server's working directory."""
    path = Path(os.path.expanduser(text))
    if not path.is_absolute():
        raise InvalidArgumentError(
            f"path must be an absolute path on the server's machine, got {text!r} (the server runs in {os.getcwd()})"
        )
    return path


def analytics_star(
    store: Store, scenarios: list[str] | None = None, schema: str = DEFAULT_STAR_SCHEMA
) -> dict[str, Any]:
    check_schema_name(schema)
    what = "the star schema build"
    return store.write(lambda repo: build_star(repo.session, scenarios, schema=schema), what=what).as_dict()
