"""The kind of each request (chat, embedding, image, audio, moderation, file, batch,
connector) and the unit of one priced by something other than tokens (`image`).

Rows written before are chat, except the connectors' (MCP tool calls and HTTP connector
requests), which become `connector`. `usage_facets_daily` (the Usage Overview's filters)
gets `kind` in its key: the table is rebuilt with it, its rows kept as chat (connector
calls were never in it).

Revision ID: 0020
Revises: 0019
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision: str | None = "0019"
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None

_SUMS = (
    "requests",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_5m_tokens",
    "cache_write_1h_tokens",
    "reasoning_tokens",
    "image_input_tokens",
    "image_output_tokens",
    "web_search_count",
    "total_tokens",
    "cost_nanodollars",
    "unpriced_requests",
    "error_requests",
    "priced_tokens",
)
_KEY = ("day", "login_name", "model", "provider", "agent", "status")
_FACETS = "usage_facets_daily"
_KEPT = "usage_facets_daily_before_0020"


def upgrade() -> None:
    with op.batch_alter_table("requests") as batch:
        batch.add_column(
            sa.Column("kind", sa.Text(), nullable=False, server_default=sa.text("'chat'"))
        )
        batch.add_column(sa.Column("unit", sa.Text(), nullable=False, server_default=sa.text("''")))
        batch.add_column(
            sa.Column("units", sa.BigInteger(), nullable=False, server_default=sa.text("0"))
        )
    requests = sa.table("requests", sa.column("kind", sa.Text), sa.column("api_format", sa.Text))
    op.execute(
        requests.update()
        .where(requests.c.api_format.in_(("mcp", "http_connector")))
        .values(kind="connector")
    )
    _rebuild_facets(with_kind=True)


def downgrade() -> None:
    _rebuild_facets(with_kind=False)
    with op.batch_alter_table("requests") as batch:
        batch.drop_column("units")
        batch.drop_column("unit")
        batch.drop_column("kind")


def _rebuild_facets(*, with_kind: bool) -> None:
    """Copy the rows aside, create the table with (or without) `kind` in its key and copy
    them back: as chat going up; summed over the kinds going down."""
    old_key = (*_KEY, "kind", "header", "value") if not with_kind else (*_KEY, "header", "value")
    kept = op.create_table(_KEPT, *_columns(old_key))
    assert kept is not None
    facets = sa.table(_FACETS, *(sa.column(name) for name in (*old_key, *_SUMS, "shard")))
    names = [*old_key, *_SUMS, "shard"]
    op.execute(kept.insert().from_select(names, sa.select(*(facets.c[n] for n in names))))
    op.drop_table(_FACETS)
    new_key = (*_KEY, "kind", "header", "value") if with_kind else (*_KEY, "header", "value")
    table = op.create_table(
        _FACETS,
        *_columns(new_key),
        sa.PrimaryKeyConstraint(*new_key, "shard", name="pk_usage_facets_daily"),
        sqlite_with_rowid=False,
    )
    assert table is not None
    op.create_index("ix_usage_facets_daily_header_value_day", _FACETS, ["header", "value", "day"])
    where = sa.text("shard <> 0")
    op.create_index(
        "ix_usage_facets_daily_unfolded",
        _FACETS,
        ["day"],
        postgresql_where=where,
        sqlite_where=where,
    )
    copied_key = [kept.c[n] for n in (*_KEY, "header", "value")]
    if with_kind:
        select = sa.select(
            *copied_key[: len(_KEY)],
            sa.literal("chat").label("kind"),
            *copied_key[len(_KEY) :],
            *(kept.c[n] for n in _SUMS),
            kept.c.shard,
        )
    else:
        select = sa.select(
            *copied_key,
            *(sa.cast(sa.func.sum(kept.c[n]), sa.BigInteger).label(n) for n in _SUMS),
            kept.c.shard,
        ).group_by(*copied_key, kept.c.shard)
    op.execute(table.insert().from_select([*new_key, *_SUMS, "shard"], select))
    op.drop_table(_KEPT)


def _columns(key: tuple[str, ...]) -> list[sa.Column[object]]:
    columns: list[sa.Column[object]] = []
    for name in key:
        if name == "day":
            columns.append(sa.Column(name, sa.Date(), nullable=False))
        elif name == "status":
            columns.append(sa.Column(name, sa.Integer(), nullable=False))
        elif name == "kind":
            columns.append(
                sa.Column(name, sa.Text(), nullable=False, server_default=sa.text("'chat'"))
            )
        else:
            columns.append(sa.Column(name, sa.Text(), nullable=False))
    columns += [
        sa.Column(name, sa.BigInteger(), nullable=False, server_default=sa.text("0"))
        for name in _SUMS
    ]
    columns.append(
        sa.Column("shard", sa.SmallInteger(), nullable=False, server_default=sa.text("0"))
    )
    return columns
