"""The ``sentinel`` command line. Each subcommand builds the settings once and calls a handler.

Errors are one line on stderr and a non-zero exit: 2 for a bad argument or setting, 1 when the
work itself failed. Handlers live next to the code they drive and are imported lazily, so
``sentinel kafka status`` does not pay for MLflow or LightGBM.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn, cast

from pydantic import ValidationError

from sentinel.errors import ConfigurationError, SentinelError
from sentinel.redact import configure_logging, redact_text
from sentinel.settings import Settings

logger = logging.getLogger(__name__)

Handler = Callable[[Settings, argparse.Namespace], int | None]


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad argument as one line, not a usage dump."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _handler(target: str) -> Callable[[Settings, argparse.Namespace], int | None]:
    """A lazily imported ``module:function`` handler."""

    def run(settings: Settings, args: argparse.Namespace) -> int | None:
        module, _, func = target.partition(":")
        return cast("int | None", getattr(importlib.import_module(module), func)(settings, args))

    return run


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text}")
    return value


def _split_arguments(parser: argparse.ArgumentParser) -> None:
    """The time-based split: train window, label delay, test window (the handbook's protocol)."""
    for flag in ("--train-days", "--delay-days", "--test-days", "--validation-days"):
        parser.add_argument(flag, type=_positive_int, default=None)
    parser.add_argument("--train-start", default=None, help="YYYY-MM-DD (default: book anchor)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="sentinel", description="Real-time card fraud scoring on Kafka.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    kafka = sub.add_parser("kafka", help="the embedded single-node Kafka broker")
    kafka.add_argument("action", choices=["start", "stop", "status"])
    kafka.set_defaults(handler=_handler("cli.infra:kafka"))

    topics = sub.add_parser("topics", help="create or list Sentinel's topics")
    topics.add_argument("action", choices=["create", "list"])
    topics.set_defaults(handler=_handler("cli.infra:topics"))

    schemas = sub.add_parser("schemas", help="export the event contracts as JSON Schema")
    schemas.add_argument("action", choices=["export"])
    schemas.add_argument("--dir", default=None, help="target directory (default: schemas/json)")
    schemas.set_defaults(handler=_handler("cli.infra:schemas"))

    demo = sub.add_parser("demo", help="run the main job end to end on the local broker")
    demo.add_argument("--count", type=_positive_int, default=20_000,
                      help="transactions to stream")
    demo.add_argument("--rate", type=_positive_float, default=2_000.0,
                      help="transactions per second")
    demo.add_argument("--customers", type=_positive_int, default=1_000,
                      help="simulated cards (terminals: twice as many)")
    demo.add_argument("--no-closed-loop", dest="closed_loop", action="store_false",
                      help="skip the drift -> retrain -> shadow -> promotion part")
    demo.set_defaults(handler=_handler("cli.demo:run"))

    _domain_commands(sub)
    return parser


def _arrival_arguments(parser: argparse.ArgumentParser) -> None:
    """The simulator's label arrival model (training.simulation.arrival)."""
    parser.add_argument("--arrival", choices=["fixed", "reports", "reports-fast"], default=None,
                        help="label arrival: fixed (every label after the label delay, the "
                             "default), reports (fraud reports within 14 days), reports-fast")
    parser.add_argument("--report-bands", default=None,
                        help="with --arrival reports: fraud delay bands LO-HI:SHARE in days, "
                             "e.g. 0-1:0.3,1-3:0.3,3-14:0.4")
    parser.add_argument("--genuine-delay-days", type=_positive_float, default=None,
                        help="with --arrival: days until a genuine payment's label (default 7)")


def _domain_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Subcommands whose handlers live in the domain packages."""
    simulate = sub.add_parser("simulate", help="write a simulated transaction history to a file")
    simulate.add_argument("--out", required=True, help="output .parquet or .csv path")
    simulate.add_argument("--customers", type=_positive_int, default=5000)
    simulate.add_argument("--terminals", type=_positive_int, default=10000)
    simulate.add_argument("--days", type=_positive_int, default=183)
    simulate.add_argument("--seed", type=int, default=0)
    simulate.add_argument("--drift", choices=["card_testing", "night_fraud", "amount_shift",
                                              "fraud_rate"], default=None)
    simulate.add_argument("--drift-day", type=int, default=None, help="first day of the drift")
    simulate.add_argument("--with-attributes", action="store_true",
                          help="add channel, merchant_category, new_device, country_mismatch")
    _arrival_arguments(simulate)
    simulate.set_defaults(handler=_handler("cli.data:simulate"))

    produce = sub.add_parser("produce", help="stream simulated transactions (and labels) to Kafka")
    produce.add_argument("--rate", type=_positive_float, default=None,
                         help="transactions per second (default: as fast as possible)")
    produce.add_argument("--count", type=_positive_int, default=None,
                         help="stop after this many transactions")
    produce.add_argument("--input", default=None, help="a .parquet/.csv history to stream instead")
    produce.add_argument("--customers", type=_positive_int, default=500)
    produce.add_argument("--terminals", type=_positive_int, default=1000)
    produce.add_argument("--days", type=_positive_int, default=30)
    produce.add_argument("--seed", type=int, default=0)
    produce.add_argument("--drift", choices=["card_testing", "night_fraud", "amount_shift",
                                             "fraud_rate"], default=None)
    produce.add_argument("--drift-day", type=int, default=None)
    _arrival_arguments(produce)
    produce.add_argument("--no-labels", action="store_true", help="do not publish labels")
    produce.add_argument("--with-attributes", action="store_true",
                         help="simulate with attributes and send them")
    produce.add_argument("--attributes", default=None,
                         help="columns sent as attributes (default with --input: all extra)")
    produce.add_argument("--categorical", default=None, help="more columns sent as attributes")
    produce.add_argument("--spec", default=None, help="the --spec file given to sentinel train")
    produce.add_argument("--columns", default=None, help="as for sentinel train")
    produce.add_argument("--time-origin", default=None, help="as for sentinel train")
    produce.set_defaults(handler=_handler("cli.data:produce"))

    train = sub.add_parser("train", help="train, gate and register a candidate model")
    train.add_argument("--input", default=None, help="training .parquet/.csv (default: simulate)")
    train.add_argument("--customers", type=_positive_int, default=5000)
    train.add_argument("--terminals", type=_positive_int, default=10000)
    train.add_argument("--days", type=_positive_int, default=183)
    train.add_argument("--seed", type=int, default=0)
    _arrival_arguments(train)
    train.add_argument("--alert-budget", type=_positive_float, default=None,
                       help="flag at most this %% of transactions")
    train.add_argument("--promote", action="store_true", help="promote the new version at once")
    _split_arguments(train)
    train.add_argument("--num-trees", type=_positive_int, default=None)
    train.add_argument("--metrics-out", default=None, help="write the metrics as JSON here")
    train.add_argument("--reason", default="sentinel train", help="recorded with the run")
    train.add_argument("--with-attributes", action="store_true",
                       help="without --input: simulate with the simulator's attributes")
    train.add_argument("--attributes", default=None,
                       help="numeric attribute columns of --input as model inputs: A,B,...")
    train.add_argument("--categorical", default=None,
                       help="categorical attribute columns (and merchant_category, channel)")
    train.add_argument("--spec", default=None,
                       help="a JSON/YAML file {attributes: [...], categorical: [...]}")
    train.add_argument("--columns", default=None,
                       help="rename the file's columns: event_time=Time,is_fraud=Class,...")
    train.add_argument("--time-origin", default=None,
                       help="read a numeric event_time as seconds from this ISO 8601 time")
    train.add_argument("--split-fractions", default=None,
                       help="train,validation,test shares of the rows in time order, no delay "
                            "(e.g. 0.6,0.1,0.3) instead of the windows in days")
    train.set_defaults(handler=_handler("cli.data:train"))

    validate = sub.add_parser("validate", help="run the data gate (Great Expectations) alone")
    validate.add_argument("--input", required=True, help="a .parquet/.csv transaction file")
    validate.add_argument("--report-dir", default=None)
    validate.set_defaults(handler=_handler("cli.train:validate"))

    evaluate = sub.add_parser("evaluate", help="score a registered alias on a file's test window")
    evaluate.add_argument("--input", required=True)
    evaluate.add_argument("--alias", default="candidate", choices=["candidate", "champion"])
    evaluate.add_argument("--out", default=None, help="write the metrics as JSON here")
    _split_arguments(evaluate)
    evaluate.set_defaults(handler=_handler("cli.train:evaluate"))

    promote = sub.add_parser("promote", help="move @champion to the current @candidate")
    promote.add_argument("--version", default=None, help="promote this version instead")
    promote.add_argument("--reason", default="sentinel promote")
    promote.set_defaults(handler=_handler("cli.data:promote"))

    rollback = sub.add_parser("rollback", help="restore the previous @champion")
    rollback.add_argument("--reason", default="sentinel rollback")
    rollback.set_defaults(handler=_handler("cli.data:rollback"))

    worker = sub.add_parser("worker", help="run the streaming scorer (exactly-once Kafka worker)")
    worker.add_argument("--web-port", type=_positive_int, default=None)
    worker.set_defaults(handler=_handler("cli.worker:worker"))

    retrainer = sub.add_parser("retrainer", help="consume drift alerts and retrain with guardrails")
    retrainer.set_defaults(handler=_handler("cli.data:retrainer"))

    replay = sub.add_parser("replay", help="backtest a model version on a stretch of the topic")
    replay.add_argument("--version", default=None, help="model version or alias (default champion)")
    replay.add_argument("--since", default=None, help="ISO time to start from")
    replay.add_argument("--until", default=None, help="ISO time to stop at")
    replay.set_defaults(handler=_handler("cli.data:replay"))

    dashboard = sub.add_parser("dashboard", help="start the monitoring dashboard")
    dashboard.add_argument("--port", type=_positive_int, default=None,
                           help="default: SENTINEL_DASHBOARD__PORT (8501)")
    dashboard.set_defaults(handler=_handler("cli.infra:dashboard"))


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        message = str(first["msg"]).removeprefix("Value error, ")
        print(f"sentinel: error: invalid setting {field}: {message}", file=sys.stderr)
        return 2
    configure_logging(
        settings,
        logging.DEBUG if args.verbose else getattr(logging, settings.log_level.upper(), 20),
        "%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        code = args.handler(settings, args)
    except ConfigurationError as exc:
        print(f"sentinel: error: {redact_text(str(exc), settings)}", file=sys.stderr)
        return 2
    except SentinelError as exc:
        print(f"sentinel: error: {redact_text(str(exc), settings)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("sentinel: interrupted", file=sys.stderr)
        return 130
    return int(code or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
