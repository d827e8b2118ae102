"""Offline training: the transaction simulator, datasets and their column mapping, the Great
Expectations data-quality gate, splits, learners, threshold selection, the training gate
against the baseline, and the model format (artifact, MLflow flavor, reference profile).

Layer 5 of 9: may import ``drift``, ``features``, ``schemas`` and ``sentinel``.
"""
