"""The ``warehouse`` command line: thin typer commands over ``ingest`` and ``queries``."""
