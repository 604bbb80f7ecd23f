"""models.calculator, parameters, parameters_sha256: a model name bound to its parameters

Existing models keep what they knew: a recorded file sha256 becomes the parameters digest, and
the calculator kind of an earlier ``warehouse evaluate`` (kept in ``extra``) its calculator.

Revision ID: 0006
Revises: 0003
Create Date: 2026-12-05
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

# the short calculator kinds whose identity is the kind itself (ingest.binding.calculator_identity)
SHORT_KINDS = ('emt', 'eam', 'nep')


def upgrade() -> None:
    with op.batch_alter_table('models', schema=None) as batch_op:
        batch_op.add_column(sa.Column('calculator', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('parameters', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('parameters_sha256', sa.String(length=64), nullable=True))
    models = sa.table('models', sa.column('id', sa.Integer), sa.column('file_sha256', sa.String),
                      sa.column('extra', sa.JSON), sa.column('calculator', sa.String),
                      sa.column('parameters_sha256', sa.String))
    conn = op.get_bind()
    for id_, sha, extra in conn.execute(sa.select(models.c.id, models.c.file_sha256, models.c.extra)).all():
        spec = (extra or {}).get('calculator') if isinstance(extra, dict) else None
        kind = str(spec).split(':')[0].strip() if spec else None
        conn.execute(models.update().where(models.c.id == id_).values(
            parameters_sha256=sha, calculator=kind if kind in SHORT_KINDS else None))


def downgrade() -> None:
    with op.batch_alter_table('models', schema=None) as batch_op:
        batch_op.drop_column('parameters_sha256')
        batch_op.drop_column('parameters')
        batch_op.drop_column('calculator')
