"""Outage drills (``shouwang drill``): the platform's real processes on loopback, a fault
injected mid-stream (a broker restart or kill, the database cut behind a proxy), and figures on
what was published, stored, lost and how long recovery took."""
