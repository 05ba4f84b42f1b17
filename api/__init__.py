"""shouwang: api."""
