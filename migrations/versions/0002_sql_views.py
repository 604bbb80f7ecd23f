"""SQL views for analysts: v_prediction_errors (per structure, model and dataset membership)
and v_leaderboard (per model and dataset), the same text on SQLite and PostgreSQL.

Definitions are DESIGN.md's (see queries/leaderboard.py); docs/SQL.md documents the columns.
``sqrt`` is built into PostgreSQL; on SQLite it is a math function of SQLite >= 3.35 builds that
enable them, and the warehouse registers its own on every connection it opens (warehouse/db.py),
so the views work from the app and from a ``sqlite3`` shell with math functions.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""
from __future__ import annotations

from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

# members with reference labels at their dataset's level of theory, with a model's prediction
_PREDICTION_ERRORS = """
CREATE VIEW v_prediction_errors AS
SELECT
    mo.id AS model_id,
    mo.name AS model,
    d.id AS dataset_id,
    d.name AS dataset,
    dm.split AS split,
    dm.subset AS subset,
    dm.config_type AS config_type,
    s.id AS structure_id,
    s.formula AS formula,
    s.elements AS elements,
    s.n_elements AS n_elements,
    s.n_atoms AS n_atoms,
    r.id AS reference_id,
    p.id AS prediction_id,
    p.status AS status,
    p.message AS message,
    pe.energy_diff_per_atom AS energy_diff_per_atom,
    pe.force_abs_sum AS force_abs_sum,
    pe.force_sq_sum AS force_sq_sum,
    pe.force_n AS force_n,
    pe.force_norm_sum AS force_norm_sum,
    pe.force_norm_sq_sum AS force_norm_sq_sum,
    pe.stress_abs_sum AS stress_abs_sum,
    pe.stress_sq_sum AS stress_sq_sum,
    pe.stress_n AS stress_n
FROM dataset_members dm
JOIN datasets d ON d.id = dm.dataset_id
JOIN structures s ON s.id = dm.structure_id
JOIN "references" r ON r.structure_id = dm.structure_id
    AND r.level_of_theory_id = d.level_of_theory_id
JOIN predictions p ON p.structure_id = dm.structure_id
JOIN models mo ON mo.id = p.model_id
LEFT JOIN prediction_errors pe ON pe.prediction_id = p.id AND pe.reference_id = r.id
"""

_LEADERBOARD = """
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


def upgrade() -> None:
    op.execute(_PREDICTION_ERRORS)
    op.execute(_LEADERBOARD)


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS v_leaderboard")
    op.execute("DROP VIEW IF EXISTS v_prediction_errors")
