"""Sentinel's base: the one settings object, the typed errors, log redaction, the HTTP guard,
the topic catalog, and the adapters to Kafka (producing, consuming, admin, the embedded
broker) that everything above shares.

Layer 1 of 9 (``tests/unit/test_layers.py``): imports nothing else of the project.
"""

__version__ = "0.1.0"
