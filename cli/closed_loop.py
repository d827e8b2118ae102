"""CLI handlers of the closed loop (``sentinel retrainer``, ``sentinel replay``)."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from datetime import datetime

from sentinel.errors import ConfigurationError
from sentinel.settings import Settings


def _time(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise ConfigurationError(f"not an ISO time: {text!r}") from None


def retrainer(settings: Settings, args: argparse.Namespace) -> int:
    from lifecycle.retrainer_kafka import run
    from sentinel.infra.runtime import check_access

    check_access(settings)
    run(settings)
    return 0


def replay(settings: Settings, args: argparse.Namespace) -> int:
    from lifecycle.replay import replay as run_replay
    from sentinel.infra.runtime import check_access

    check_access(settings)
    report = run_replay(settings, args.version, _time(args.since), _time(args.until))
    print(json.dumps(asdict(report), indent=2))
    return 0
