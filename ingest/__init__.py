"""Readers (pure ``parse_*`` functions yielding records) and the one loader that writes."""
