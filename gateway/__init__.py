"""shouwang: gateway."""
