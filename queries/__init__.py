"""Read-only questions asked of the warehouse; each returns a pandas DataFrame."""
