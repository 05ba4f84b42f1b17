"""shouwang: core."""
