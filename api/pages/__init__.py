"""API: the duty pages (``/duty``): server-rendered phone pages for duty and maintenance staff,
with person logins, sessions and notification links (docs/pages.md)."""
