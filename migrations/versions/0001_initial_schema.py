"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-22
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('ensembles',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ensembles')),
    sa.UniqueConstraint('name', name=op.f('uq_ensembles_name'))
    )
    op.create_table('ingest_runs',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('kind', sa.String(length=64), nullable=False),
    sa.Column('source_uri', sa.Text(), nullable=True),
    sa.Column('source_sha256', sa.String(length=64), nullable=True),
    sa.Column('argv', sa.JSON(), nullable=True),
    sa.Column('user', sa.String(length=128), nullable=True),
    sa.Column('host', sa.String(length=255), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('warehouse_version', sa.String(length=32), nullable=False),
    sa.Column('library_versions', sa.JSON(), nullable=True),
    sa.Column('counts', sa.JSON(), nullable=True),
    sa.Column('message', sa.Text(), nullable=True),
    sa.Column('notes', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ingest_runs'))
    )
    with op.batch_alter_table('ingest_runs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ingest_runs_kind'), ['kind'], unique=False)
        batch_op.create_index(batch_op.f('ix_ingest_runs_source_sha256'), ['source_sha256'], unique=False)
        batch_op.create_index(batch_op.f('ix_ingest_runs_status'), ['status'], unique=False)

    op.create_table('levels_of_theory',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('code', sa.String(length=64), nullable=True),
    sa.Column('code_version', sa.String(length=64), nullable=True),
    sa.Column('functional', sa.String(length=64), nullable=True),
    sa.Column('cutoff_ev', sa.Float(), nullable=True),
    sa.Column('kpoint_density', sa.String(length=128), nullable=True),
    sa.Column('pseudopotentials', sa.String(length=255), nullable=True),
    sa.Column('spin', sa.String(length=64), nullable=True),
    sa.Column('dispersion', sa.String(length=64), nullable=True),
    sa.Column('extra', sa.JSON(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_levels_of_theory')),
    sa.UniqueConstraint('name', name=op.f('uq_levels_of_theory_name'))
    )
    op.create_table('datasets',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('level_of_theory_id', sa.Integer(), nullable=False),
    sa.Column('created_run_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.ForeignKeyConstraint(['created_run_id'], ['ingest_runs.id'], name=op.f('fk_datasets_created_run_id_ingest_runs')),
    sa.ForeignKeyConstraint(['level_of_theory_id'], ['levels_of_theory.id'], name=op.f('fk_datasets_level_of_theory_id_levels_of_theory')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_datasets')),
    sa.UniqueConstraint('name', name=op.f('uq_datasets_name'))
    )
    with op.batch_alter_table('datasets', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_datasets_created_run_id'), ['created_run_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_datasets_level_of_theory_id'), ['level_of_theory_id'], unique=False)

    op.create_table('lake_files',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('path', sa.String(length=1024), nullable=False),
    sa.Column('kind', sa.String(length=64), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('n_rows', sa.BigInteger(), nullable=False),
    sa.Column('n_bytes', sa.BigInteger(), nullable=False),
    sa.Column('ingest_run_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.ForeignKeyConstraint(['ingest_run_id'], ['ingest_runs.id'], name=op.f('fk_lake_files_ingest_run_id_ingest_runs')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_lake_files')),
    sa.UniqueConstraint('path', name=op.f('uq_lake_files_path'))
    )
    with op.batch_alter_table('lake_files', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_lake_files_ingest_run_id'), ['ingest_run_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_lake_files_kind'), ['kind'], unique=False)

    op.create_table('models',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('family', sa.String(length=64), nullable=True),
    sa.Column('version', sa.String(length=64), nullable=True),
    sa.Column('framework', sa.String(length=64), nullable=True),
    sa.Column('n_parameters', sa.BigInteger(), nullable=True),
    sa.Column('training_data', sa.Text(), nullable=True),
    sa.Column('level_of_theory_id', sa.Integer(), nullable=True),
    sa.Column('conservative', sa.Boolean(), nullable=True),
    sa.Column('licence', sa.String(length=128), nullable=True),
    sa.Column('url', sa.Text(), nullable=True),
    sa.Column('doi', sa.String(length=255), nullable=True),
    sa.Column('file_sha256', sa.String(length=64), nullable=True),
    sa.Column('extra', sa.JSON(), nullable=True),
    sa.Column('created_run_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.ForeignKeyConstraint(['created_run_id'], ['ingest_runs.id'], name=op.f('fk_models_created_run_id_ingest_runs')),
    sa.ForeignKeyConstraint(['level_of_theory_id'], ['levels_of_theory.id'], name=op.f('fk_models_level_of_theory_id_levels_of_theory')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_models')),
    sa.UniqueConstraint('name', name=op.f('uq_models_name'))
    )
    with op.batch_alter_table('models', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_models_created_run_id'), ['created_run_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_models_family'), ['family'], unique=False)
        batch_op.create_index(batch_op.f('ix_models_level_of_theory_id'), ['level_of_theory_id'], unique=False)

    op.create_table('ensemble_members',
    sa.Column('ensemble_id', sa.Integer(), nullable=False),
    sa.Column('model_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['ensemble_id'], ['ensembles.id'], name=op.f('fk_ensemble_members_ensemble_id_ensembles'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['model_id'], ['models.id'], name=op.f('fk_ensemble_members_model_id_models'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('ensemble_id', 'model_id', name=op.f('pk_ensemble_members'))
    )
    with op.batch_alter_table('ensemble_members', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ensemble_members_model_id'), ['model_id'], unique=False)

    op.create_table('md_runs',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('model_id', sa.Integer(), nullable=True),
    sa.Column('system', sa.String(length=255), nullable=False),
    sa.Column('composition', sa.String(length=255), nullable=True),
    sa.Column('engine', sa.String(length=64), nullable=True),
    sa.Column('engine_version', sa.String(length=64), nullable=True),
    sa.Column('ensemble', sa.String(length=32), nullable=True),
    sa.Column('temperature_k', sa.Float(), nullable=True),
    sa.Column('pressure_gpa', sa.Float(), nullable=True),
    sa.Column('timestep_fs', sa.Float(), nullable=True),
    sa.Column('n_steps', sa.BigInteger(), nullable=True),
    sa.Column('n_atoms', sa.BigInteger(), nullable=True),
    sa.Column('hardware', sa.String(length=255), nullable=True),
    sa.Column('label', sa.String(length=255), nullable=True),
    sa.Column('extra', sa.JSON(), nullable=True),
    sa.Column('ingest_run_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.ForeignKeyConstraint(['ingest_run_id'], ['ingest_runs.id'], name=op.f('fk_md_runs_ingest_run_id_ingest_runs')),
    sa.ForeignKeyConstraint(['model_id'], ['models.id'], name=op.f('fk_md_runs_model_id_models')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_md_runs'))
    )
    with op.batch_alter_table('md_runs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_md_runs_ingest_run_id'), ['ingest_run_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_md_runs_model_id'), ['model_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_md_runs_system'), ['system'], unique=False)
        batch_op.create_index(batch_op.f('ix_md_runs_temperature_k'), ['temperature_k'], unique=False)

    op.create_table('structures',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.Column('order_free_hash', sa.String(length=64), nullable=False),
    sa.Column('n_atoms', sa.Integer(), nullable=False),
    sa.Column('formula', sa.String(length=255), nullable=False),
    sa.Column('elements', sa.String(length=255), nullable=False),
    sa.Column('n_elements', sa.Integer(), nullable=False),
    sa.Column('cell', sa.JSON(), nullable=False),
    sa.Column('pbc', sa.String(length=3), nullable=False),
    sa.Column('volume', sa.Float(), nullable=True),
    sa.Column('lake_file_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('ingest_run_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.ForeignKeyConstraint(['ingest_run_id'], ['ingest_runs.id'], name=op.f('fk_structures_ingest_run_id_ingest_runs')),
    sa.ForeignKeyConstraint(['lake_file_id'], ['lake_files.id'], name=op.f('fk_structures_lake_file_id_lake_files')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_structures')),
    sa.UniqueConstraint('hash', name=op.f('uq_structures_hash'))
    )
    with op.batch_alter_table('structures', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_structures_formula'), ['formula'], unique=False)
        batch_op.create_index(batch_op.f('ix_structures_ingest_run_id'), ['ingest_run_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_structures_lake_file_id'), ['lake_file_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_structures_n_atoms'), ['n_atoms'], unique=False)
        batch_op.create_index(batch_op.f('ix_structures_n_elements'), ['n_elements'], unique=False)
        batch_op.create_index(batch_op.f('ix_structures_order_free_hash'), ['order_free_hash'], unique=False)

    op.create_table('timings',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('model_id', sa.Integer(), nullable=True),
    sa.Column('task', sa.String(length=32), nullable=False),
    sa.Column('hardware', sa.String(length=255), nullable=True),
    sa.Column('device_model', sa.String(length=255), nullable=True),
    sa.Column('device_count', sa.Integer(), nullable=True),
    sa.Column('cpu_model', sa.String(length=255), nullable=True),
    sa.Column('cpu_cores', sa.Integer(), nullable=True),
    sa.Column('software', sa.String(length=128), nullable=True),
    sa.Column('software_version', sa.String(length=64), nullable=True),
    sa.Column('precision', sa.String(length=32), nullable=True),
    sa.Column('system', sa.String(length=255), nullable=True),
    sa.Column('composition', sa.String(length=255), nullable=True),
    sa.Column('n_atoms', sa.BigInteger(), nullable=True),
    sa.Column('n_steps', sa.BigInteger(), nullable=True),
    sa.Column('wall_s', sa.Float(), nullable=True),
    sa.Column('peak_memory_mb', sa.Float(), nullable=True),
    sa.Column('atom_steps_per_s', sa.Float(), nullable=True),
    sa.Column('epochs', sa.Float(), nullable=True),
    sa.Column('extra', sa.JSON(), nullable=True),
    sa.Column('ingest_run_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.ForeignKeyConstraint(['ingest_run_id'], ['ingest_runs.id'], name=op.f('fk_timings_ingest_run_id_ingest_runs')),
    sa.ForeignKeyConstraint(['model_id'], ['models.id'], name=op.f('fk_timings_model_id_models')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_timings'))
    )
    with op.batch_alter_table('timings', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_timings_hardware'), ['hardware'], unique=False)
        batch_op.create_index(batch_op.f('ix_timings_ingest_run_id'), ['ingest_run_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_timings_model_id'), ['model_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_timings_task'), ['task'], unique=False)

    op.create_table('training_records',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('model_id', sa.Integer(), nullable=False),
    sa.Column('source', sa.String(length=64), nullable=False),
    sa.Column('summary', sa.JSON(), nullable=True),
    sa.Column('lake_file_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('ingest_run_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.ForeignKeyConstraint(['ingest_run_id'], ['ingest_runs.id'], name=op.f('fk_training_records_ingest_run_id_ingest_runs')),
    sa.ForeignKeyConstraint(['lake_file_id'], ['lake_files.id'], name=op.f('fk_training_records_lake_file_id_lake_files')),
    sa.ForeignKeyConstraint(['model_id'], ['models.id'], name=op.f('fk_training_records_model_id_models'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_training_records'))
    )
    with op.batch_alter_table('training_records', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_training_records_ingest_run_id'), ['ingest_run_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_training_records_lake_file_id'), ['lake_file_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_training_records_model_id'), ['model_id'], unique=False)

    op.create_table('atom_grades',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('model_id', sa.Integer(), nullable=False),
    sa.Column('structure_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('kind', sa.String(length=64), nullable=False),
    sa.Column('max_grade', sa.Float(), nullable=True),
    sa.Column('lake_file_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('ingest_run_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.ForeignKeyConstraint(['ingest_run_id'], ['ingest_runs.id'], name=op.f('fk_atom_grades_ingest_run_id_ingest_runs')),
    sa.ForeignKeyConstraint(['lake_file_id'], ['lake_files.id'], name=op.f('fk_atom_grades_lake_file_id_lake_files')),
    sa.ForeignKeyConstraint(['model_id'], ['models.id'], name=op.f('fk_atom_grades_model_id_models')),
    sa.ForeignKeyConstraint(['structure_id'], ['structures.id'], name=op.f('fk_atom_grades_structure_id_structures')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_atom_grades')),
    sa.UniqueConstraint('model_id', 'kind', 'structure_id', name=op.f('uq_atom_grades_model_id_kind_structure_id'))
    )
    with op.batch_alter_table('atom_grades', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_atom_grades_ingest_run_id'), ['ingest_run_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_atom_grades_kind'), ['kind'], unique=False)
        batch_op.create_index(batch_op.f('ix_atom_grades_lake_file_id'), ['lake_file_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_atom_grades_model_id'), ['model_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_atom_grades_structure_id'), ['structure_id'], unique=False)

    op.create_table('dataset_members',
    sa.Column('dataset_id', sa.Integer(), nullable=False),
    sa.Column('structure_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('split', sa.String(length=64), nullable=True),
    sa.Column('subset', sa.String(length=255), nullable=True),
    sa.Column('config_type', sa.String(length=255), nullable=True),
    sa.Column('weight', sa.Float(), nullable=True),
    sa.Column('source_index', sa.Integer(), nullable=True),
    sa.Column('ingest_run_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.ForeignKeyConstraint(['dataset_id'], ['datasets.id'], name=op.f('fk_dataset_members_dataset_id_datasets'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['ingest_run_id'], ['ingest_runs.id'], name=op.f('fk_dataset_members_ingest_run_id_ingest_runs')),
    sa.ForeignKeyConstraint(['structure_id'], ['structures.id'], name=op.f('fk_dataset_members_structure_id_structures'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('dataset_id', 'structure_id', name=op.f('pk_dataset_members'))
    )
    with op.batch_alter_table('dataset_members', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_dataset_members_config_type'), ['config_type'], unique=False)
        batch_op.create_index(batch_op.f('ix_dataset_members_ingest_run_id'), ['ingest_run_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_dataset_members_split'), ['split'], unique=False)
        batch_op.create_index(batch_op.f('ix_dataset_members_structure_id'), ['structure_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_dataset_members_subset'), ['subset'], unique=False)

    op.create_table('md_observables',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('md_run_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('value', sa.Float(), nullable=True),
    sa.Column('unit', sa.String(length=32), nullable=True),
    sa.Column('method', sa.Text(), nullable=True),
    sa.Column('extra', sa.JSON(), nullable=True),
    sa.ForeignKeyConstraint(['md_run_id'], ['md_runs.id'], name=op.f('fk_md_observables_md_run_id_md_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_md_observables')),
    sa.UniqueConstraint('md_run_id', 'name', name=op.f('uq_md_observables_md_run_id_name'))
    )
    with op.batch_alter_table('md_observables', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_md_observables_md_run_id'), ['md_run_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_md_observables_name'), ['name'], unique=False)

    op.create_table('md_series',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('md_run_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('columns', sa.JSON(), nullable=False),
    sa.Column('n_rows', sa.BigInteger(), nullable=False),
    sa.Column('lake_file_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.ForeignKeyConstraint(['lake_file_id'], ['lake_files.id'], name=op.f('fk_md_series_lake_file_id_lake_files')),
    sa.ForeignKeyConstraint(['md_run_id'], ['md_runs.id'], name=op.f('fk_md_series_md_run_id_md_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_md_series')),
    sa.UniqueConstraint('md_run_id', 'name', name=op.f('uq_md_series_md_run_id_name'))
    )
    with op.batch_alter_table('md_series', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_md_series_lake_file_id'), ['lake_file_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_md_series_md_run_id'), ['md_run_id'], unique=False)

    op.create_table('predictions',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('model_id', sa.Integer(), nullable=False),
    sa.Column('structure_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('message', sa.Text(), nullable=True),
    sa.Column('energy', sa.Float(), nullable=True),
    sa.Column('stress_xx', sa.Float(), nullable=True),
    sa.Column('stress_yy', sa.Float(), nullable=True),
    sa.Column('stress_zz', sa.Float(), nullable=True),
    sa.Column('stress_yz', sa.Float(), nullable=True),
    sa.Column('stress_xz', sa.Float(), nullable=True),
    sa.Column('stress_xy', sa.Float(), nullable=True),
    sa.Column('has_forces', sa.Boolean(), nullable=False),
    sa.Column('lake_file_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('ingest_run_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.ForeignKeyConstraint(['ingest_run_id'], ['ingest_runs.id'], name=op.f('fk_predictions_ingest_run_id_ingest_runs')),
    sa.ForeignKeyConstraint(['lake_file_id'], ['lake_files.id'], name=op.f('fk_predictions_lake_file_id_lake_files')),
    sa.ForeignKeyConstraint(['model_id'], ['models.id'], name=op.f('fk_predictions_model_id_models')),
    sa.ForeignKeyConstraint(['structure_id'], ['structures.id'], name=op.f('fk_predictions_structure_id_structures')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_predictions')),
    sa.UniqueConstraint('model_id', 'structure_id', name=op.f('uq_predictions_model_id_structure_id'))
    )
    with op.batch_alter_table('predictions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_predictions_ingest_run_id'), ['ingest_run_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_predictions_lake_file_id'), ['lake_file_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_predictions_model_id'), ['model_id'], unique=False)
        batch_op.create_index('ix_predictions_model_status', ['model_id', 'status'], unique=False)
        batch_op.create_index(batch_op.f('ix_predictions_status'), ['status'], unique=False)
        batch_op.create_index(batch_op.f('ix_predictions_structure_id'), ['structure_id'], unique=False)

    op.create_table('properties',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('material', sa.String(length=255), nullable=False),
    sa.Column('property', sa.String(length=128), nullable=False),
    sa.Column('key', sa.String(length=255), nullable=True),
    sa.Column('value', sa.Float(), nullable=True),
    sa.Column('unit', sa.String(length=32), nullable=True),
    sa.Column('model_id', sa.Integer(), nullable=True),
    sa.Column('level_of_theory_id', sa.Integer(), nullable=True),
    sa.Column('structure_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('extra', sa.JSON(), nullable=True),
    sa.Column('ingest_run_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.ForeignKeyConstraint(['ingest_run_id'], ['ingest_runs.id'], name=op.f('fk_properties_ingest_run_id_ingest_runs')),
    sa.ForeignKeyConstraint(['level_of_theory_id'], ['levels_of_theory.id'], name=op.f('fk_properties_level_of_theory_id_levels_of_theory')),
    sa.ForeignKeyConstraint(['model_id'], ['models.id'], name=op.f('fk_properties_model_id_models')),
    sa.ForeignKeyConstraint(['structure_id'], ['structures.id'], name=op.f('fk_properties_structure_id_structures')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_properties'))
    )
    with op.batch_alter_table('properties', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_properties_ingest_run_id'), ['ingest_run_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_properties_level_of_theory_id'), ['level_of_theory_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_properties_material'), ['material'], unique=False)
        batch_op.create_index('ix_properties_material_property', ['material', 'property'], unique=False)
        batch_op.create_index(batch_op.f('ix_properties_model_id'), ['model_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_properties_property'), ['property'], unique=False)
        batch_op.create_index(batch_op.f('ix_properties_structure_id'), ['structure_id'], unique=False)

    op.create_table('references',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('structure_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('level_of_theory_id', sa.Integer(), nullable=False),
    sa.Column('energy', sa.Float(), nullable=True),
    sa.Column('free_energy', sa.Float(), nullable=True),
    sa.Column('stress_xx', sa.Float(), nullable=True),
    sa.Column('stress_yy', sa.Float(), nullable=True),
    sa.Column('stress_zz', sa.Float(), nullable=True),
    sa.Column('stress_yz', sa.Float(), nullable=True),
    sa.Column('stress_xz', sa.Float(), nullable=True),
    sa.Column('stress_xy', sa.Float(), nullable=True),
    sa.Column('has_forces', sa.Boolean(), nullable=False),
    sa.Column('lake_file_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('ingest_run_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.ForeignKeyConstraint(['ingest_run_id'], ['ingest_runs.id'], name=op.f('fk_references_ingest_run_id_ingest_runs')),
    sa.ForeignKeyConstraint(['lake_file_id'], ['lake_files.id'], name=op.f('fk_references_lake_file_id_lake_files')),
    sa.ForeignKeyConstraint(['level_of_theory_id'], ['levels_of_theory.id'], name=op.f('fk_references_level_of_theory_id_levels_of_theory')),
    sa.ForeignKeyConstraint(['structure_id'], ['structures.id'], name=op.f('fk_references_structure_id_structures')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_references')),
    sa.UniqueConstraint('structure_id', 'level_of_theory_id', name=op.f('uq_references_structure_id_level_of_theory_id'))
    )
    with op.batch_alter_table('references', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_references_ingest_run_id'), ['ingest_run_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_references_lake_file_id'), ['lake_file_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_references_level_of_theory_id'), ['level_of_theory_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_references_structure_id'), ['structure_id'], unique=False)

    op.create_table('structure_elements',
    sa.Column('structure_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('element', sa.String(length=3), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['structure_id'], ['structures.id'], name=op.f('fk_structure_elements_structure_id_structures'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('structure_id', 'element', name=op.f('pk_structure_elements'))
    )
    with op.batch_alter_table('structure_elements', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_structure_elements_element'), ['element'], unique=False)

    op.create_table('prediction_element_errors',
    sa.Column('prediction_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('reference_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('element', sa.String(length=3), nullable=False),
    sa.Column('n_atoms', sa.Integer(), nullable=False),
    sa.Column('force_abs_sum', sa.Float(), nullable=False),
    sa.Column('force_sq_sum', sa.Float(), nullable=False),
    sa.Column('force_n', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['prediction_id'], ['predictions.id'], name=op.f('fk_prediction_element_errors_prediction_id_predictions'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['reference_id'], ['references.id'], name=op.f('fk_prediction_element_errors_reference_id_references'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('prediction_id', 'reference_id', 'element', name=op.f('pk_prediction_element_errors'))
    )
    with op.batch_alter_table('prediction_element_errors', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_prediction_element_errors_element'), ['element'], unique=False)
        batch_op.create_index(batch_op.f('ix_prediction_element_errors_reference_id'), ['reference_id'], unique=False)

    op.create_table('prediction_errors',
    sa.Column('prediction_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('reference_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('n_atoms', sa.Integer(), nullable=False),
    sa.Column('energy_diff_per_atom', sa.Float(), nullable=True),
    sa.Column('force_abs_sum', sa.Float(), nullable=True),
    sa.Column('force_sq_sum', sa.Float(), nullable=True),
    sa.Column('force_n', sa.Integer(), nullable=False),
    sa.Column('force_norm_sum', sa.Float(), nullable=True),
    sa.Column('force_norm_sq_sum', sa.Float(), nullable=True),
    sa.Column('stress_abs_sum', sa.Float(), nullable=True),
    sa.Column('stress_sq_sum', sa.Float(), nullable=True),
    sa.Column('stress_n', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['prediction_id'], ['predictions.id'], name=op.f('fk_prediction_errors_prediction_id_predictions'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['reference_id'], ['references.id'], name=op.f('fk_prediction_errors_reference_id_references'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('prediction_id', 'reference_id', name=op.f('pk_prediction_errors'))
    )
    with op.batch_alter_table('prediction_errors', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_prediction_errors_reference_id'), ['reference_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('prediction_errors', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_prediction_errors_reference_id'))

    op.drop_table('prediction_errors')
    with op.batch_alter_table('prediction_element_errors', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_prediction_element_errors_reference_id'))
        batch_op.drop_index(batch_op.f('ix_prediction_element_errors_element'))

    op.drop_table('prediction_element_errors')
    with op.batch_alter_table('structure_elements', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_structure_elements_element'))

    op.drop_table('structure_elements')
    with op.batch_alter_table('references', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_references_structure_id'))
        batch_op.drop_index(batch_op.f('ix_references_level_of_theory_id'))
        batch_op.drop_index(batch_op.f('ix_references_lake_file_id'))
        batch_op.drop_index(batch_op.f('ix_references_ingest_run_id'))

    op.drop_table('references')
    with op.batch_alter_table('properties', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_properties_structure_id'))
        batch_op.drop_index(batch_op.f('ix_properties_property'))
        batch_op.drop_index(batch_op.f('ix_properties_model_id'))
        batch_op.drop_index('ix_properties_material_property')
        batch_op.drop_index(batch_op.f('ix_properties_material'))
        batch_op.drop_index(batch_op.f('ix_properties_level_of_theory_id'))
        batch_op.drop_index(batch_op.f('ix_properties_ingest_run_id'))

    op.drop_table('properties')
    with op.batch_alter_table('predictions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_predictions_structure_id'))
        batch_op.drop_index(batch_op.f('ix_predictions_status'))
        batch_op.drop_index('ix_predictions_model_status')
        batch_op.drop_index(batch_op.f('ix_predictions_model_id'))
        batch_op.drop_index(batch_op.f('ix_predictions_lake_file_id'))
        batch_op.drop_index(batch_op.f('ix_predictions_ingest_run_id'))

    op.drop_table('predictions')
    with op.batch_alter_table('md_series', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_md_series_md_run_id'))
        batch_op.drop_index(batch_op.f('ix_md_series_lake_file_id'))

    op.drop_table('md_series')
    with op.batch_alter_table('md_observables', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_md_observables_name'))
        batch_op.drop_index(batch_op.f('ix_md_observables_md_run_id'))

    op.drop_table('md_observables')
    with op.batch_alter_table('dataset_members', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_dataset_members_subset'))
        batch_op.drop_index(batch_op.f('ix_dataset_members_structure_id'))
        batch_op.drop_index(batch_op.f('ix_dataset_members_split'))
        batch_op.drop_index(batch_op.f('ix_dataset_members_ingest_run_id'))
        batch_op.drop_index(batch_op.f('ix_dataset_members_config_type'))

    op.drop_table('dataset_members')
    with op.batch_alter_table('atom_grades', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_atom_grades_structure_id'))
        batch_op.drop_index(batch_op.f('ix_atom_grades_model_id'))
        batch_op.drop_index(batch_op.f('ix_atom_grades_lake_file_id'))
        batch_op.drop_index(batch_op.f('ix_atom_grades_kind'))
        batch_op.drop_index(batch_op.f('ix_atom_grades_ingest_run_id'))

    op.drop_table('atom_grades')
    with op.batch_alter_table('training_records', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_training_records_model_id'))
        batch_op.drop_index(batch_op.f('ix_training_records_lake_file_id'))
        batch_op.drop_index(batch_op.f('ix_training_records_ingest_run_id'))

    op.drop_table('training_records')
    with op.batch_alter_table('timings', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_timings_task'))
        batch_op.drop_index(batch_op.f('ix_timings_model_id'))
        batch_op.drop_index(batch_op.f('ix_timings_ingest_run_id'))
        batch_op.drop_index(batch_op.f('ix_timings_hardware'))

    op.drop_table('timings')
    with op.batch_alter_table('structures', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_structures_order_free_hash'))
        batch_op.drop_index(batch_op.f('ix_structures_n_elements'))
        batch_op.drop_index(batch_op.f('ix_structures_n_atoms'))
        batch_op.drop_index(batch_op.f('ix_structures_lake_file_id'))
        batch_op.drop_index(batch_op.f('ix_structures_ingest_run_id'))
        batch_op.drop_index(batch_op.f('ix_structures_formula'))

    op.drop_table('structures')
    with op.batch_alter_table('md_runs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_md_runs_temperature_k'))
        batch_op.drop_index(batch_op.f('ix_md_runs_system'))
        batch_op.drop_index(batch_op.f('ix_md_runs_model_id'))
        batch_op.drop_index(batch_op.f('ix_md_runs_ingest_run_id'))

    op.drop_table('md_runs')
    with op.batch_alter_table('ensemble_members', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ensemble_members_model_id'))

    op.drop_table('ensemble_members')
    with op.batch_alter_table('models', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_models_level_of_theory_id'))
        batch_op.drop_index(batch_op.f('ix_models_family'))
        batch_op.drop_index(batch_op.f('ix_models_created_run_id'))

    op.drop_table('models')
    with op.batch_alter_table('lake_files', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_lake_files_kind'))
        batch_op.drop_index(batch_op.f('ix_lake_files_ingest_run_id'))

    op.drop_table('lake_files')
    with op.batch_alter_table('datasets', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_datasets_level_of_theory_id'))
        batch_op.drop_index(batch_op.f('ix_datasets_created_run_id'))

    op.drop_table('datasets')
    op.drop_table('levels_of_theory')
    with op.batch_alter_table('ingest_runs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ingest_runs_status'))
        batch_op.drop_index(batch_op.f('ix_ingest_runs_source_sha256'))
        batch_op.drop_index(batch_op.f('ix_ingest_runs_kind'))

    op.drop_table('ingest_runs')
    op.drop_table('ensembles')
