"""shouwang: dashboards."""
