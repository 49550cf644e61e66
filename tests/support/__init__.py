"""Helpers the test suites share: running the real service, waiting on conditions."""
