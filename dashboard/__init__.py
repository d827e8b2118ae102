"""Sentinel's monitoring dashboard: what a fraud team keeps open.

Layout only in :mod:`dashboard.app` (Streamlit); the reads (Prometheus, the topics, the
registry's reference profile) and the pure logic (objectives, drift, timeline) in small modules
tested without a browser. Every data source comes from the one settings object.

Layer 8 of 9: may import ``lifecycle``, ``training``, ``drift``, ``features``, ``schemas`` and
``sentinel``.
"""
