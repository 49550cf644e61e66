"""Logs as JSON lines on stdout: the formatter, the access line, the batched writer."""
