"""The database's own error message, on one line, for the store's messages to quote."""

from __future__ import annotations


def database_message(exc: BaseException, *, with_hint: bool = False) -> str:
    """The message of ``exc`` (a driver error, or SQLAlchemy's wrapper of one) on one line.

    By default its first line. ``with_hint``, for whoever wrote the SQL: the
    lines before the echo of the SQL with a caret under it (``LINE 1: ...``),
    so DuckDB's "Did you mean ..." stays; from psycopg, the primary message
    with the server's HINT.
    """
    error = getattr(exc, "orig", None) or exc
    if not with_hint:
        text = str(error).strip()
        return text.splitlines()[0] if text else type(exc).__name__
    diag = getattr(error, "diag", None)  # psycopg
    if diag is not None and diag.message_primary:
        hint = f" (hint: {diag.message_hint})" if diag.message_hint else ""
        return f"{diag.message_primary}{hint}"
    lines = []
    for line in str(error).strip().splitlines():
        if not line.strip() or line.startswith("LINE "):
            break
        lines.append(line.strip())
    return " ".join(lines) or type(exc).__name__
