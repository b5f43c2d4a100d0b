"""Traffic policies as versioned rows with their history, and every decision taken under them with its statistic.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rollout_policies",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("deployment", sa.String(128), nullable=False),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("document", sa.Text, nullable=False),
        sa.Column("state", sa.Text, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.UniqueConstraint("deployment", "revision", name="uq_rollout_policies_deployment_revision"),
    )
    op.create_table(
        "rollout_decisions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("policy_id", sa.Integer, nullable=False),
        sa.Column("deployment", sa.String(128), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("decision", sa.Text, nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index("ix_rollout_decisions_policy_id", "rollout_decisions", ["policy_id"])
    op.create_index("ix_rollout_decisions_deployment", "rollout_decisions", ["deployment"])


def downgrade() -> None:
    op.drop_table("rollout_decisions")
    op.drop_table("rollout_policies")
