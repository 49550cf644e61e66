"""The lab on one machine: replicas, Prometheus and Alertmanager on loopback."""
