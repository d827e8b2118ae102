"""Online drift detection over the stream, in river's style: one detector per module behind
one interface (:mod:`drift.base`: ``update`` / ``drift_detected`` / ``reset``):
:mod:`drift.adwin` and :mod:`drift.hddm_a` (river's, wrapped), :mod:`drift.kswin` (KSWIN in
numpy), :mod:`drift.cusum` (a Poisson CUSUM on rare-event rates, :mod:`drift.rate`).

Two monitors compose them: the input monitor the worker feeds (:mod:`drift.monitor`, with PSI
against a model's reference profile, :mod:`drift.psi`) and the label monitor
(:mod:`drift.labels`) the retrainer feeds through it; :mod:`drift.calibration` is the tool
for their thresholds.

Layer 4 of 9: may import ``features``, ``schemas`` and ``sentinel``.
"""
