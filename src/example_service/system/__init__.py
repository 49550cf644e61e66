"""Readings of the system (sysfs, procfs, the cgroup tree) as plain values.

Nothing here knows of Prometheus: metrics/ turns these readings into families, and /info
into JSON."""
