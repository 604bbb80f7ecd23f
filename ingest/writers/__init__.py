"""The loader's parts: each writes or reads one kind of thing for ingest.loader.Loader."""
