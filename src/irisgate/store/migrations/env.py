"""Alembic environment for irisgate's schema.

irisgate runs its migrations itself, at start-up, through
`irisgate.store.database.open_database`: that code opens an async connection, takes the
migration lock and calls Alembic inside `AsyncConnection.run_sync`, handing the synchronous
connection over in `config.attributes["connection"]`. The migrations then run inside the
caller's transaction, which the caller commits. No `alembic.ini` is needed.

Offline mode (`alembic upgrade head --sql` with `sqlalchemy.url` set in a config) prints the
SQL for a DBA to review or apply by hand.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from irisgate.store.tables import metadata


def _run_online(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def _run_offline() -> None:
    url = context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("offline migrations need sqlalchemy.url in the Alembic config")
    context.configure(
        url=url,
        target_metadata=metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    _run_offline()
else:
    _connection = context.config.attributes.get("connection")
    if not isinstance(_connection, Connection):
        raise RuntimeError(
            "irisgate's migrations run from irisgate.store.database.open_database(), which "
            "passes a connection in config.attributes['connection']; for SQL to review, run "
            "Alembic offline (--sql) with sqlalchemy.url set"
        )
    _run_online(_connection)
