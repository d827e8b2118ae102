"""Online drift detection over the stream: River-style detectors behind one ``update`` /
``drift_detected`` interface (KSWIN and ADWIN on scores, Poisson CUSUMs on rare-event rates,
PSI against a model's reference profile), the input monitor the worker feeds, and the
calibration tool for their thresholds.

Layer 4 of 9: may import ``features``, ``schemas`` and ``sentinel``.
"""
