"""shouwang: simulators."""
