"""The ``sentinel`` command line, one place for every subcommand: :mod:`cli.main` parses and
dispatches; the handler modules wire settings to the packages below (``data``: simulate and
produce; ``train``: train, promote, rollback and the DVC steps; ``closed_loop``: retrainer and
replay; ``worker``; ``infra``: kafka, topics, schemas, dashboard; ``demo``).

Layer 9 of 9: may import every package.
"""
