"""Handlers of the training-side subcommands: simulate, produce, train, promote, rollback,
retrainer, replay. Thin: they parse nothing and hold no logic beyond wiring settings to code."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pandas as pd

from schemas import ModelEvent
from sentinel.errors import ConfigurationError
from sentinel.infra.admin import create_topics
from sentinel.infra.kafka_io import EventProducer
from sentinel.infra.runtime import ensure_kafka
from sentinel.settings import Settings
from sentinel.topics import catalog
from training.simulation.arrival import PRESETS, LabelArrival, parse_bands
from training.simulation.config import DriftScenario, SimulationConfig
from training.simulation.errors import SimulationError
from training.simulation.simulator import simulate as run_simulation

logger = logging.getLogger(__name__)


def simulation_config(settings: Settings, args: argparse.Namespace) -> SimulationConfig:
    """A SimulationConfig from the common --customers/--terminals/--days/--seed/--drift flags."""
    drift = None
    if getattr(args, "drift", None):
        if args.drift_day is None:
            raise ConfigurationError("--drift needs --drift-day (the first day of the drift)")
        drift = DriftScenario(kind=args.drift, start_day=args.drift_day)
    elif getattr(args, "drift_day", None) is not None:
        raise ConfigurationError("--drift-day needs --drift (which drift scenario)")
    try:
        return SimulationConfig(
            n_customers=args.customers, n_terminals=args.terminals, n_days=args.days,
            seed=args.seed, label_delay_days=settings.features.label_delay_days, drift=drift,
            arrival=label_arrival(args),
        )
    except SimulationError as exc:
        raise ConfigurationError(str(exc)) from exc


def label_arrival(args: argparse.Namespace) -> LabelArrival | None:
    """The --arrival/--report-bands/--genuine-delay-days model (None: the book's fixed delay
    of ``features.label_delay_days``)."""
    name = getattr(args, "arrival", None)
    bands = getattr(args, "report_bands", None)
    genuine = getattr(args, "genuine_delay_days", None)
    if name is None:
        if bands is not None or genuine is not None:
            raise ConfigurationError("--report-bands/--genuine-delay-days need --arrival")
        return None
    if bands is not None and name == "fixed":
        raise ConfigurationError("--report-bands needs --arrival reports or reports-fast")
    preset = PRESETS[name]
    return replace(preset, bands=parse_bands(bands) if bands is not None else preset.bands,
                   genuine_delay_days=preset.genuine_delay_days if genuine is None else genuine)


def load_history(settings: Settings, args: argparse.Namespace) -> pd.DataFrame:
    """The --input file when given (validated columns), else a fresh simulation (with the
    simulator's attributes under --with-attributes)."""
    if getattr(args, "input", None):
        from training.dataset import read_transactions

        path = Path(args.input)
        if not path.exists():
            raise ConfigurationError(f"--input {path}: no such file")
        return read_transactions(path)
    frame = run_simulation(simulation_config(settings, args))
    if getattr(args, "with_attributes", False):
        from training.simulation.attributes import add_attributes

        frame = add_attributes(frame, args.seed)
    return frame


def stream_history(settings: Settings, args: argparse.Namespace,
                   ) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """What ``sentinel produce`` streams: the history in Sentinel's shape (``--columns``,
    ``--time-origin`` and absent ids as for ``sentinel train``, labels due ``label_delay_days``
    after a payment when the file has no ``label_time``) and the columns sent as attributes:
    the declared ones (``--attributes``/``--categorical``/``--spec``), else every column
    beyond the documented ones."""
    from cli.train import attribute_names
    from training import columns
    from training.dataset import OPTIONAL_COLUMNS, REQUIRED_COLUMNS, parse_times

    frame = load_history(settings, args)
    if getattr(args, "input", None):
        frame = columns.shape(frame, columns.parse_mapping(getattr(args, "columns", None)),
                              columns.parse_origin(getattr(args, "time_origin", None)))
    frame = frame.copy()
    for column in ("event_time", "label_time"):
        if column in frame.columns:
            frame[column] = parse_times(frame[column])
    if "label_time" not in frame.columns and "is_fraud" in frame.columns:
        frame["label_time"] = frame["event_time"] + pd.Timedelta(
            days=settings.features.label_delay_days)
    frame = frame.sort_values("event_time", kind="stable").reset_index(drop=True)
    numeric, categorical = attribute_names(args)
    declared = (*numeric, *categorical)
    if not declared and (getattr(args, "input", None) or getattr(args, "with_attributes", 0)):
        known = {*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS, "fraud_scenario"}
        declared = tuple(c for c in frame.columns if c not in known)
    absent = [c for c in declared if c not in frame.columns]
    if absent:
        raise ConfigurationError(f"attributes not in the file: {absent}")
    return frame, declared


def simulate(settings: Settings, args: argparse.Namespace) -> int:
    from training.simulation.storage import write_csv, write_parquet

    out = Path(args.out)
    if out.suffix not in (".parquet", ".csv"):
        raise ConfigurationError(f"--out {out}: use a .parquet or .csv file name")
    frame = run_simulation(simulation_config(settings, args))
    if args.with_attributes:
        from training.simulation.attributes import add_attributes

        frame = add_attributes(frame, args.seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    (write_parquet if out.suffix == ".parquet" else write_csv)(frame, out)
    print(f"wrote {len(frame)} transactions ({int(frame['is_fraud'].sum())} fraud) to {out}")
    return 0


def produce(settings: Settings, args: argparse.Namespace) -> int:
    from training.producer import produce_history

    frame, attributes = stream_history(settings, args)
    bootstrap = ensure_kafka(settings)
    conf = settings.librdkafka()
    create_topics(conf, catalog(settings.topics))
    with EventProducer(conf) as producer:
        stats = produce_history(
            producer, frame, settings.topics.name("transactions"), settings.topics.name("labels"),
            rate=args.rate, count=args.count, with_labels=not args.no_labels,
            attributes=attributes,
            on_progress=lambda s: logger.info("produced transactions=%s labels=%s rate=%.0f/s",
                                              s.transactions, s.labels, s.rate),
        )
    print(f"produced {stats.transactions} transactions and {stats.labels} labels "
          f"in {stats.seconds:.1f}s ({stats.rate:.0f} transactions/s) to {bootstrap}")
    return 0


def model_event_publisher(settings: Settings) -> Callable[[ModelEvent], None]:
    """The registry's publish port, bound to the model-events topic."""
    ensure_kafka(settings)
    conf = settings.librdkafka()
    create_topics(conf, catalog(settings.topics))
    topic = settings.topics.name("model_events")

    def publish(event: ModelEvent) -> None:
        with EventProducer(conf) as producer:
            producer.send(topic, event.model_name, event)

    return publish


def train(settings: Settings, args: argparse.Namespace) -> int:
    from cli import train as cli_commands

    return cli_commands.train(settings, args, publish=model_event_publisher(settings))


def promote(settings: Settings, args: argparse.Namespace) -> int:
    from cli import train as cli_commands

    return cli_commands.promote(settings, args, publish=model_event_publisher(settings))


def rollback(settings: Settings, args: argparse.Namespace) -> int:
    from cli import train as cli_commands

    return cli_commands.rollback(settings, args, publish=model_event_publisher(settings))


def retrainer(settings: Settings, args: argparse.Namespace) -> int:
    """``sentinel retrainer``: see :mod:`cli.closed_loop`."""
    from cli.closed_loop import retrainer as run

    return run(settings, args)


def replay(settings: Settings, args: argparse.Namespace) -> int:
    """``sentinel replay``: see :mod:`cli.closed_loop`."""
    from cli.closed_loop import replay as run

    return run(settings, args)
