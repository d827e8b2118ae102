"""The streaming worker: an exactly-once engine on confluent-kafka (consume, restore, card
stage, terminal stage, checkpoint), its state stores and changelogs, scoring with the champion
and the shadow candidate, the HTTP API (``/predict``, ``/reports``, health, metrics).

Layer 7 of 9: may import ``lifecycle`` (the registry adapter it loads models through),
``training`` (the model format), ``drift``, ``features``, ``schemas`` and ``sentinel``.
"""
