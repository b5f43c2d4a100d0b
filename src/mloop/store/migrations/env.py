"""Alembic environment: mloop always hands in a connection already inside its locked transaction."""

from __future__ import annotations

from alembic import context

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=None,
    render_as_batch=connection.dialect.name == "sqlite",
    transactional_ddl=True,
    # Not "alembic_version": MLflow keeps its own there when both share one database.
    version_table=context.config.attributes["version_table"],
)
with context.begin_transaction():
    context.run_migrations()
