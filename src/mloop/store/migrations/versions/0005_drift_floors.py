"""Monitor configs: the single ``effect_floor`` (on KS's D and Cramér's V) gives way to ``floors`` per effect measure
(W1/σ, total variation). A floor on the old scales has no meaning on the new ones, so it is dropped and the monitor
takes the measured defaults (docs/drift.md); without this, every monitor registered before would fail to parse and
go quiet.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_monitors = sa.table("monitors", sa.column("id", sa.Integer), sa.column("config", sa.Text))


def upgrade() -> None:
    bind = op.get_bind()
    for row in bind.execute(sa.select(_monitors.c.id, _monitors.c.config)).all():
        config = json.loads(row.config)
        if "effect_floor" not in config:
            continue
        del config["effect_floor"]
        bind.execute(sa.update(_monitors).where(_monitors.c.id == row.id).values(config=json.dumps(config, sort_keys=True)))


def downgrade() -> None:
    bind = op.get_bind()
    for row in bind.execute(sa.select(_monitors.c.id, _monitors.c.config)).all():
        config = json.loads(row.config)
        config.pop("floors", None)
        config["effect_floor"] = 0.1
        bind.execute(sa.update(_monitors).where(_monitors.c.id == row.id).values(config=json.dumps(config, sort_keys=True)))
