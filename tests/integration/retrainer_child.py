"""A retrainer process for the kill -9 tests: reads one drift alert (queued as the Kafka
adapter does), judges it and retrains with a quick trainer on the real registry, and kills
itself with SIGKILL at the step named on the command line.

Usage: python -m tests.integration.retrainer_child STEP ALERT_JSON EVENT_LOG (settings from
the SENTINEL_* environment)."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from lifecycle.labelstore import LabelStore
from lifecycle.registry import ModelRegistry
from lifecycle.retrainer import Retrainer
from schemas import decode
from schemas.events import DriftAlert
from sentinel.settings import Settings
from tests.integration.lifecycle_support import EventLog, quick_train


def main() -> None:
    step, alert_text, log = sys.argv[1:4]

    def die_at(name: str) -> None:
        if name == step:
            os.kill(os.getpid(), signal.SIGKILL)

    settings = Settings()
    store = LabelStore(settings.label_store_location)
    retrainer = Retrainer(settings, store, ModelRegistry(settings), EventLog(Path(log)),
                          train=quick_train, on_step=die_at)
    retrainer.start()
    retrainer.state.enqueue_alerts([decode(DriftAlert, alert_text.encode())])
    die_at("queued")
    for queued in retrainer.state.queued_alerts():
        retrainer.on_alert(queued)
    die_at("done")


if __name__ == "__main__":
    main()
