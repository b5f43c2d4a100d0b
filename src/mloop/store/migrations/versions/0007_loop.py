"""The closed loop: retraining policies with their history, attempts (one per trigger) and their steps, and named
cursors (how far a consumer of the event bus has read).

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "loop_policies",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("deployment", sa.String(128), nullable=False),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("document", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.UniqueConstraint("deployment", "revision", name="uq_loop_policies_deployment_revision"),
    )
    op.create_table(
        "loop_attempts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("deployment", sa.String(128), nullable=False),
        sa.Column("policy_id", sa.Integer, nullable=False),
        sa.Column("trigger_kind", sa.String(32), nullable=False),
        sa.Column("trigger_key", sa.String(256), nullable=False),
        sa.Column("trigger_detail", sa.Text, nullable=False),
        sa.Column("trigger_at", sa.Float, nullable=False),
        sa.Column("step", sa.String(32), nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("result", sa.String(32), nullable=True),
        sa.Column("human", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.UniqueConstraint("deployment", "trigger_key", name="uq_loop_attempts_deployment_trigger"),
    )
    op.create_index("ix_loop_attempts_deployment", "loop_attempts", ["deployment"])
    op.create_table(
        "loop_steps",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("attempt_id", sa.Integer, nullable=False),
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("finished_at", sa.Float, nullable=True),
        sa.Column("outcome", sa.String(32), nullable=True),
        sa.Column("detail", sa.Text, nullable=False),
    )
    op.create_index("ix_loop_steps_attempt_id", "loop_steps", ["attempt_id"])
    op.create_table(
        "cursors",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("cursors")
    op.drop_table("loop_steps")
    op.drop_table("loop_attempts")
    op.drop_table("loop_policies")
