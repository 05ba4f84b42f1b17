"""Responsibility: the event-responsibility list (事件部件处置权责清单), shared by analytics,
notify, the API, dashboards and public disclosure: its model, its loader and the list in force."""
