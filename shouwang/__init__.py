"""The ``shouwang`` command line: the one place that knows every stage (``python -m shouwang``)."""
