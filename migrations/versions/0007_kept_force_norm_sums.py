"""leaderboard_sums.fn_abs, fn_sq, fn_n: the force-norm error sums kept at ingest too

``force_norm_mae`` and ``force_norm_rmse`` were read live (a join over every prediction: 12 s
at 60k structures x 30 models where the kept sums answer in 0.02 s). The upgrade recomputes the
kept rows with the application's statements, as 0005's backfill does.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('leaderboard_sums', schema=None) as batch_op:
        batch_op.add_column(sa.Column('fn_abs', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('fn_sq', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('fn_n', sa.BigInteger(), server_default=sa.text('0'),
                                      nullable=False))
    from warehouse.keptsums import rebuild

    rebuild(op.get_bind())


def downgrade() -> None:
    with op.batch_alter_table('leaderboard_sums', schema=None) as batch_op:
        batch_op.drop_column('fn_n')
        batch_op.drop_column('fn_sq')
        batch_op.drop_column('fn_abs')
