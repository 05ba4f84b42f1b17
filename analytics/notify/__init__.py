"""Analytics: pushing alarms to the people on duty (outbox → dispatcher → channels)."""
