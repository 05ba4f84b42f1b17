"""shouwang: ingest."""
