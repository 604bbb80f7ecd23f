"""Alembic environment and revisions of the catalog schema (shipped in the wheel)."""
