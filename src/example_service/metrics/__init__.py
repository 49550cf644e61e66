"""The metrics registry and everything that feeds it."""
