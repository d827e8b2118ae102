"""Sentinel: real-time credit-card fraud scoring on Apache Kafka (CLI, settings, local infra)."""

__version__ = "0.1.0"
