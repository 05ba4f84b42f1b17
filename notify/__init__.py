"""Notify: the stage that pushes alarms to the people on duty (outbox → dispatcher → channels),
and the platform's own alarms to the platform operators on shift."""
