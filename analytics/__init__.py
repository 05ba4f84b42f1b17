"""shouwang: analytics."""
