"""Notify: the stage that pushes alarms to the people on duty (outbox → dispatcher → channels)."""
