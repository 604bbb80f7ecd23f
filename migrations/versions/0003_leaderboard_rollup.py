"""leaderboard_rollup: pre-grouped error sums, a derived cache rebuilt by queries.rollup

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table(
        'leaderboard_rollup',
        sa.Column('id', BigId, nullable=False),
        sa.Column('state', sa.String(length=128), nullable=False),
        sa.Column('model_id', sa.Integer(), nullable=True),
        sa.Column('dataset_id', sa.Integer(), nullable=False),
        sa.Column('subset', sa.String(length=255), nullable=True),
        sa.Column('n_elements', sa.Integer(), nullable=False),
        sa.Column('element', sa.String(length=3), nullable=True),
        *(sa.Column(c, sa.BigInteger(), nullable=False)
          for c in ('n_structures', 'n_atoms', 'n_predicted', 'n_failed', 'n_energy')),
        sa.Column('e_abs', sa.Float(), nullable=True),
        sa.Column('e_sq', sa.Float(), nullable=True),
        sa.Column('f_abs', sa.Float(), nullable=True),
        sa.Column('f_sq', sa.Float(), nullable=True),
        sa.Column('f_n', sa.BigInteger(), nullable=False),
        sa.Column('s_abs', sa.Float(), nullable=True),
        sa.Column('s_sq', sa.Float(), nullable=True),
        sa.Column('s_n', sa.BigInteger(), nullable=False),
        sa.Column('id_sum', sa.BigInteger(), nullable=False),
        sa.Column('max_run', sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(['dataset_id'], ['datasets.id'], ondelete='CASCADE',
                                name=op.f('fk_leaderboard_rollup_dataset_id_datasets')),
        sa.ForeignKeyConstraint(['model_id'], ['models.id'], ondelete='CASCADE',
                                name=op.f('fk_leaderboard_rollup_model_id_models')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_leaderboard_rollup')),
    )
    with op.batch_alter_table('leaderboard_rollup', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_leaderboard_rollup_dataset_id'), ['dataset_id'], unique=False)
        batch_op.create_index('ix_leaderboard_rollup_model_dataset', ['model_id', 'dataset_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('leaderboard_rollup', schema=None) as batch_op:
        batch_op.drop_index('ix_leaderboard_rollup_model_dataset')
        batch_op.drop_index(batch_op.f('ix_leaderboard_rollup_dataset_id'))
    op.drop_table('leaderboard_rollup')
