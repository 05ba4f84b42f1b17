"""Bench: benchmark harnesses that print their figures and ratios (``shouwang bench ...``).
Never imported by the platform's services."""
