"""mloop's own tables, as SQLAlchemy Core objects; the Alembic migrations create exactly these."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

deployments = sa.Table(
    "deployments",
    metadata,
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("model_name", sa.String(256), nullable=False),
    sa.Column("alias", sa.String(128), nullable=False),
    sa.Column("rollout", sa.Text, nullable=True),
    sa.Column("serving", sa.Text, nullable=True),
    sa.Column("revision", sa.Integer, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)

model_manifests = sa.Table(
    "model_manifests",
    metadata,
    sa.Column("model_name", sa.String(256), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("manifest", sa.Text, nullable=False),
    sa.Column("manifest_sha256", sa.String(64), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("signature", sa.String(64), nullable=True),
    sa.Column("key_id", sa.String(32), nullable=True),
)

monitors = sa.Table(
    "monitors",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("deployment", sa.String(128), nullable=False),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("config", sa.Text, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.UniqueConstraint("deployment", "name", name="uq_monitors_deployment_name"),
)

alerts = sa.Table(
    "alerts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("deployment", sa.String(128), nullable=False),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("severity", sa.String(16), nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("details", sa.Text, nullable=True),
    sa.Column("created_at", sa.Float, nullable=False),
)

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("actor", sa.String(128), nullable=False),
    sa.Column("action", sa.String(128), nullable=False),
    sa.Column("target", sa.String(512), nullable=False),
    sa.Column("details", sa.Text, nullable=True),
    sa.Column("created_at", sa.Float, nullable=False),
)

events = sa.Table(
    "events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("topic", sa.String(128), nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)

monitor_state = sa.Table(
    "monitor_state",
    metadata,
    sa.Column("monitor_id", sa.Integer, sa.ForeignKey("monitors.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)

monitor_windows = sa.Table(
    "monitor_windows",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("monitor_id", sa.Integer, sa.ForeignKey("monitors.id", ondelete="CASCADE"), nullable=False, index=True),
    sa.Column("start", sa.Float, nullable=False),
    sa.Column("end", sa.Float, nullable=False),
    sa.Column("rows", sa.Integer, nullable=False),
    sa.Column("drift", sa.Boolean, nullable=False),
    sa.Column("alarm", sa.Boolean, nullable=False),
    sa.Column("summary", sa.Text, nullable=False),
    sa.Column("report", sa.Text, nullable=True),
    sa.Column("created_at", sa.Float, nullable=False),
)

leases = sa.Table(
    "leases",
    metadata,
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("holder", sa.String(128), nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.String(16), primary_key=True),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("secret_sha256", sa.String(64), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("revoked_at", sa.Float, nullable=True),
)

rollout_policies = sa.Table(
    "rollout_policies",
    metadata,
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

rollout_decisions = sa.Table(
    "rollout_decisions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("policy_id", sa.Integer, nullable=False, index=True),
    sa.Column("deployment", sa.String(128), nullable=False, index=True),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("decision", sa.Text, nullable=False),
    sa.Column("actor", sa.String(128), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)

loop_policies = sa.Table(
    "loop_policies",
    metadata,
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

loop_attempts = sa.Table(
    "loop_attempts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("deployment", sa.String(128), nullable=False, index=True),
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

loop_steps = sa.Table(
    "loop_steps",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("attempt_id", sa.Integer, nullable=False, index=True),
    sa.Column("name", sa.String(32), nullable=False),
    sa.Column("started_at", sa.Float, nullable=False),
    sa.Column("finished_at", sa.Float, nullable=True),
    sa.Column("outcome", sa.String(32), nullable=True),
    sa.Column("detail", sa.Text, nullable=False),
)

cursors = sa.Table(
    "cursors",
    metadata,
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)

feature_definitions = sa.Table(
    "feature_definitions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("document", sa.Text, nullable=False),
    sa.Column("schema", sa.Text, nullable=True),
    sa.Column("actor", sa.String(128), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.UniqueConstraint("kind", "name", "version", name="uq_feature_definitions_kind_name_version"),
)
