"""Leaderboard sums kept at ingest (leaderboard_sums, leaderboard_expected) replace the lazily
rebuilt leaderboard_rollup; v_leaderboard reads them, v_leaderboard_element is new.

The kept rows are backfilled from the catalog by revision 0007 (``warehouse.keptsums.rebuild``,
which writes that revision's columns too); from then on
every ingest adds to them in its own transaction. The downgrade restores revision 0003's empty
rollup (its code rebuilds it on the next leaderboard) and 0002's live v_leaderboard.

Revision ID: 0005
Revises: 0003
Create Date: 2026-12-05
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
FLOATS = ('e_abs', 'e_sq', 'f_abs', 'f_sq', 's_abs', 's_sq')

# The kept sums to metrics, as queries.leaderboard.finish_metrics computes them. Whole-structure
# rows have element ''; per-element rows count the structures containing the element (energy,
# stress, n_structures) and that species' atoms (forces, n_atoms).
_METRICS = """
    1000.0 * su.e_abs / NULLIF(su.n_energy, 0) AS energy_mae,
    1000.0 * sqrt(su.e_sq / NULLIF(su.n_energy, 0)) AS energy_rmse,
    1000.0 * su.f_abs / NULLIF(su.f_n, 0) AS force_mae,
    1000.0 * sqrt(su.f_sq / NULLIF(su.f_n, 0)) AS force_rmse,
    su.s_abs / NULLIF(su.s_n, 0) AS stress_mae,
    sqrt(su.s_sq / NULLIF(su.s_n, 0)) AS stress_rmse"""


def _kept_view(name: str, per_element: bool) -> str:
    el = ", element" if per_element else ""
    where = "element <> ''" if per_element else "element = ''"
    return f"""
CREATE VIEW {name} AS
WITH expected AS (
    SELECT dataset_id{el}, sum(n_structures) AS n_structures, sum(n_atoms) AS n_atoms
    FROM leaderboard_expected WHERE {where}
    GROUP BY dataset_id{el}
), sums AS (
    SELECT model_id, dataset_id{el},
        sum(n_predicted) AS n_predicted, sum(n_failed) AS n_failed, sum(n_energy) AS n_energy,
        sum(e_abs) AS e_abs, sum(e_sq) AS e_sq, sum(f_abs) AS f_abs, sum(f_sq) AS f_sq,
        sum(f_n) AS f_n, sum(s_abs) AS s_abs, sum(s_sq) AS s_sq, sum(s_n) AS s_n
    FROM leaderboard_sums WHERE {where}
    GROUP BY model_id, dataset_id{el}
    HAVING sum(n_predicted) + sum(n_failed) > 0
)
SELECT
    mo.name AS model,
    d.name AS dataset,{" su.element AS element," if per_element else ""}
    e.n_structures AS n_structures,
    e.n_atoms AS n_atoms,
    su.n_predicted AS n_predicted,
    su.n_failed AS n_failed,
    e.n_structures - su.n_predicted - su.n_failed AS n_missing,{_METRICS}
FROM sums su
JOIN expected e ON e.dataset_id = su.dataset_id{" AND e.element = su.element" if per_element else ""}
JOIN models mo ON mo.id = su.model_id
JOIN datasets d ON d.id = su.dataset_id
"""


# revision 0002's v_leaderboard, for the downgrade: the live join over every prediction
_LIVE_LEADERBOARD = """
CREATE VIEW v_leaderboard AS
WITH expected AS (
    SELECT dm.dataset_id AS dataset_id, count(*) AS n_structures, sum(s.n_atoms) AS n_atoms
    FROM dataset_members dm
    JOIN datasets d ON d.id = dm.dataset_id
    JOIN structures s ON s.id = dm.structure_id
    JOIN "references" r ON r.structure_id = dm.structure_id
        AND r.level_of_theory_id = d.level_of_theory_id
    GROUP BY dm.dataset_id
), sums AS (
    SELECT model_id, dataset_id,
        count(CASE WHEN status = 'ok' THEN 1 END) AS n_predicted,
        count(CASE WHEN status = 'failed' THEN 1 END) AS n_failed,
        count(energy_diff_per_atom) AS n_energy,
        sum(abs(energy_diff_per_atom)) AS e_abs,
        sum(energy_diff_per_atom * energy_diff_per_atom) AS e_sq,
        sum(force_abs_sum) AS f_abs, sum(force_sq_sum) AS f_sq, sum(force_n) AS f_n,
        sum(stress_abs_sum) AS s_abs, sum(stress_sq_sum) AS s_sq, sum(stress_n) AS s_n
    FROM v_prediction_errors
    GROUP BY model_id, dataset_id
)
SELECT
    mo.name AS model,
    d.name AS dataset,
    e.n_structures AS n_structures,
    e.n_atoms AS n_atoms,
    su.n_predicted AS n_predicted,
    su.n_failed AS n_failed,
    e.n_structures - su.n_predicted - su.n_failed AS n_missing,
    1000.0 * su.e_abs / NULLIF(su.n_energy, 0) AS energy_mae,
    1000.0 * sqrt(su.e_sq / NULLIF(su.n_energy, 0)) AS energy_rmse,
    1000.0 * su.f_abs / NULLIF(su.f_n, 0) AS force_mae,
    1000.0 * sqrt(su.f_sq / NULLIF(su.f_n, 0)) AS force_rmse,
    su.s_abs / NULLIF(su.s_n, 0) AS stress_mae,
    sqrt(su.s_sq / NULLIF(su.s_n, 0)) AS stress_rmse
FROM sums su
JOIN expected e ON e.dataset_id = su.dataset_id
JOIN models mo ON mo.id = su.model_id
JOIN datasets d ON d.id = su.dataset_id
"""


def _keys() -> list[sa.Column]:
    return [sa.Column('subset', sa.String(length=255), nullable=False),
            sa.Column('tagged', sa.Boolean(), nullable=False),
            sa.Column('n_elements', sa.Integer(), nullable=False),
            sa.Column('element', sa.String(length=3), nullable=False)]


def upgrade() -> None:
    op.execute("DROP VIEW IF EXISTS v_leaderboard")
    with op.batch_alter_table('leaderboard_rollup', schema=None) as batch_op:
        batch_op.drop_index('ix_leaderboard_rollup_model_dataset')
        batch_op.drop_index(batch_op.f('ix_leaderboard_rollup_dataset_id'))
    op.drop_table('leaderboard_rollup')
    op.create_table(
        'leaderboard_sums',
        sa.Column('model_id', sa.Integer(), nullable=False),
        sa.Column('dataset_id', sa.Integer(), nullable=False),
        *_keys(),
        *(sa.Column(c, sa.BigInteger(), nullable=False) for c in ('n_predicted', 'n_failed', 'n_energy')),
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
                                name=op.f('fk_leaderboard_sums_dataset_id_datasets')),
        sa.ForeignKeyConstraint(['model_id'], ['models.id'], ondelete='CASCADE',
                                name=op.f('fk_leaderboard_sums_model_id_models')),
        sa.PrimaryKeyConstraint('model_id', 'dataset_id', 'subset', 'tagged', 'n_elements',
                                'element', name=op.f('pk_leaderboard_sums')),
    )
    with op.batch_alter_table('leaderboard_sums', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_leaderboard_sums_dataset_id'), ['dataset_id'], unique=False)
    op.create_table(
        'leaderboard_expected',
        sa.Column('dataset_id', sa.Integer(), nullable=False),
        *_keys(),
        sa.Column('n_structures', sa.BigInteger(), nullable=False),
        sa.Column('n_atoms', sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(['dataset_id'], ['datasets.id'], ondelete='CASCADE',
                                name=op.f('fk_leaderboard_expected_dataset_id_datasets')),
        sa.PrimaryKeyConstraint('dataset_id', 'subset', 'tagged', 'n_elements', 'element',
                                name=op.f('pk_leaderboard_expected')),
    )
    # The backfill is 0007's: it uses the application's statements (the same ones every ingest
    # runs, so the kept rows start exactly as ingests continue them), which write 0007's
    # columns too and so can only run once they exist.
    op.execute(_kept_view('v_leaderboard', per_element=False))
    op.execute(_kept_view('v_leaderboard_element', per_element=True))


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS v_leaderboard_element")
    op.execute("DROP VIEW IF EXISTS v_leaderboard")
    op.drop_table('leaderboard_expected')
    with op.batch_alter_table('leaderboard_sums', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_leaderboard_sums_dataset_id'))
    op.drop_table('leaderboard_sums')
    # revision 0003's table, empty: its code rebuilds it on the next leaderboard
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
    op.execute(_LIVE_LEADERBOARD)
