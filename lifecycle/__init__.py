"""Lifecycle: the alarm and work-order state machine shared by analytics, notify and the API:
alarm states, deadline planning, work-order transitions, acknowledgement and who is on duty."""
