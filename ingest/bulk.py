"""Moved to :mod:`ingest.writers.bulk`; these names stay importable from here."""

from ingest.writers.bulk import (  # noqa: F401
    KEY_CHECKS,
    BackgroundWriter,
    allocate_ids,
    as_float,
    bulk_insert,
    key_check_mode,
    note_keys,
)
