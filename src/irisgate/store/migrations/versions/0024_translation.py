"""Translation: which provider API served a request, and both sides' bodies.

`requests.upstream_format` is the API format of the provider that served a translated
request ("" for every other request: the provider spoke the caller's `api_format`). The
capture of such a request keeps the caller's bodies where every capture does and the
provider's in `captures.upstream_request_body` / `upstream_response_body` (NULL otherwise).

Revision ID: 0024
Revises: 0023
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0024"
down_revision: str | None = "0023"
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None


def upgrade() -> None:
    op.add_column(
        "requests",
        sa.Column("upstream_format", sa.Text(), nullable=False, server_default=sa.text("''")),
    )
    op.add_column("captures", sa.Column("upstream_request_body", sa.LargeBinary(), nullable=True))
    op.add_column("captures", sa.Column("upstream_response_body", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("captures") as batch:
        batch.drop_column("upstream_response_body")
        batch.drop_column("upstream_request_body")
    with op.batch_alter_table("requests") as batch:
        batch.drop_column("upstream_format")
