"""catalog_identity: the catalog's uuid, which binds a lake to it (the lake's _warehouse.json)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # one row (id 1), written at the catalog's first write (warehouse.identity): a database cloned
    # from a template before that gets its own uuid
    op.create_table(
        'catalog_identity',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('uuid', sa.String(length=36), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_catalog_identity')),
    )


def downgrade() -> None:
    op.drop_table('catalog_identity')
