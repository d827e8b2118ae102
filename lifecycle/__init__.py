"""The model lifecycle: the MLflow registry adapter (aliases ``@champion`` / ``@candidate``,
model events), the retraining consumer (alerts -> retrain -> shadow -> promote or roll back),
backfilled shadow evidence, always-valid promotion tests and their guards, the durable
lifecycle store and label store, and leadership between retrainer copies.

Layer 6 of 9: may import ``training``, ``drift``, ``features``, ``schemas`` and ``sentinel``.
"""
