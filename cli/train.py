"""Handlers of ``sentinel train|promote|rollback`` (wired by :mod:`cli.main`), plus
``validate`` and ``evaluate`` for the DVC pipeline: ``python -m cli.train ...``.

Each handler returns the exit code: 0 on success, 2 when the training gate rejects the model.
Typed errors (e.g. :class:`training.errors.DataQualityError`) propagate to the CLI, which
prints them as one line and exits non-zero.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd

from lifecycle.pipeline import TrainingConfig, TrainingOutcome, run_training
from lifecycle.registry import CANDIDATE, CHAMPION, ModelRegistry, Publish
from sentinel.errors import ConfigurationError
from sentinel.settings import Settings
from training.learners import BoosterParams
from training.selection import ThresholdPolicy
from training.split import SplitConfig

logger = logging.getLogger(__name__)

GATE_REJECTED = 2


def _arg(args: argparse.Namespace, name: str, default: Any = None) -> Any:
    value = getattr(args, name, None)
    return default if value is None else value


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise ConfigurationError(f"--train-start {text!r}: use YYYY-MM-DD") from exc


def _names(text: str | None, flag: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in (text or "").split(",") if n.strip())
    if len(set(names)) != len(names):
        raise ConfigurationError(f"{flag} {text!r}: a name is repeated")
    return names


def attribute_names(args: argparse.Namespace) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(numeric, categorical) attribute columns from --attributes/--categorical or --spec."""
    numeric = _names(_arg(args, "attributes"), "--attributes")
    categorical = _names(_arg(args, "categorical"), "--categorical")
    spec_file = _arg(args, "spec")
    if spec_file:
        if numeric or categorical:
            raise ConfigurationError("--spec replaces --attributes/--categorical: use one")
        import yaml

        try:
            data = yaml.safe_load(Path(spec_file).read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigurationError(f"--spec {spec_file}: {exc}".splitlines()[0]) from exc
        if not isinstance(data, dict) or set(data) - {"attributes", "categorical"}:
            raise ConfigurationError(f"--spec {spec_file}: expected a mapping with "
                                     "'attributes' and/or 'categorical' lists of names")
        numeric, categorical = (tuple(str(n) for n in data.get(k) or ())
                                for k in ("attributes", "categorical"))
    both = set(numeric) & set(categorical)
    if both:
        raise ConfigurationError(f"{sorted(both)} declared both numeric and categorical")
    return numeric, categorical


def _fractions(text: str | None) -> tuple[float, float, float] | None:
    if not text:
        return None
    try:
        parts = tuple(float(p) for p in text.split(","))
    except ValueError:
        parts = ()
    if len(parts) != 3 or min(parts) <= 0 or abs(sum(parts) - 1.0) > 1e-6:
        raise ConfigurationError(f"--split-fractions {text!r}: three shares > 0 that sum to 1, "
                                 "e.g. 0.6,0.1,0.3")
    return parts


def training_config(settings: Settings, args: argparse.Namespace) -> TrainingConfig:
    """A TrainingConfig from optional flags (--train-days, --delay-days, --test-days,
    --validation-days, --train-start, --num-trees, --alert-budget PCT, --decline-precision).

    ``--alert-budget`` is a percentage: 0.5 flags at most 0.5 % of payments (on validation)."""
    start = _arg(args, "train_start")
    split = SplitConfig(
        train_days=_arg(args, "train_days", 7),
        delay_days=_arg(args, "delay_days", settings.features.gap_days),
        test_days=_arg(args, "test_days", 7),
        validation_days=_arg(args, "validation_days", 7),
        train_start=_date(start) if isinstance(start, str) else start,
        fractions=_fractions(_arg(args, "split_fractions")),
    )
    booster = BoosterParams(
        num_trees=_arg(args, "num_trees", BoosterParams.num_trees), seed=_arg(args, "seed", 0) + 42
    )
    budget_pct = _arg(args, "alert_budget")
    if budget_pct is not None and not 0 < budget_pct <= 100:
        raise ConfigurationError(f"--alert-budget {budget_pct}: a percentage in (0, 100]")
    policy = ThresholdPolicy(
        decline_precision=_arg(args, "decline_precision", ThresholdPolicy.decline_precision),
        alert_budget=None if budget_pct is None else budget_pct / 100.0,
    )
    numeric, categorical = attribute_names(args)
    return TrainingConfig(split=split, booster=booster, policy=policy, numeric=numeric,
                          categorical=categorical)


def _load(settings: Settings, args: argparse.Namespace) -> tuple[pd.DataFrame, str]:
    if _arg(args, "input"):
        from training import columns
        from training.dataset import read_transactions

        mapping = columns.parse_mapping(_arg(args, "columns"))
        origin = columns.parse_origin(_arg(args, "time_origin"))
        return columns.shape(read_transactions(args.input), mapping, origin), str(args.input)
    from cli.data import load_history

    return load_history(settings, args), f"simulate(seed={_arg(args, 'seed', 0)})"


def _summary(outcome: TrainingOutcome) -> str:
    m, b = outcome.metrics, outcome.baseline_metrics
    head = (
        f"{outcome.status}: AP {m['average_precision']:.4f} AUC {m['roc_auc']:.4f} "
        f"CP@100 {m['card_precision_at_100']:.4f} (baseline AP {b['average_precision']:.4f}"
    )
    if outcome.champion_metrics:
        head += f", champion AP {outcome.champion_metrics['average_precision']:.4f}"
    head += f") test {outcome.windows['split.test']} run {outcome.run_id}"
    if outcome.model is not None:
        alias = CHAMPION if outcome.promoted else CANDIDATE
        head += f"; version {outcome.model.version} is @{alias}"
    else:
        head += "; not registered: " + "; ".join(outcome.gate_reasons)
    return head


def train(settings: Settings, args: argparse.Namespace, publish: Publish | None = None) -> int:
    """``sentinel train``: gate the data, train, gate the model, log and register."""
    config = training_config(settings, args)  # bad flags fail before the data is read
    frame, source = _load(settings, args)
    outcome = run_training(
        settings,
        frame,
        source=source,
        config=config,
        publish=publish,
        promote=bool(_arg(args, "promote", False)),
        reason=_arg(args, "reason", "sentinel train"),
    )
    metrics_out = _arg(args, "metrics_out")
    if metrics_out:
        Path(metrics_out).parent.mkdir(parents=True, exist_ok=True)
        Path(metrics_out).write_text(
            json.dumps(
                {
                    "status": outcome.status,
                    "run_id": outcome.run_id,
                    "version": outcome.model.version if outcome.model else None,
                    "dataset_digest": outcome.dataset_digest,
                    "test": outcome.metrics,
                    "baseline": outcome.baseline_metrics,
                    "champion": outcome.champion_metrics,
                },
                indent=1,
            )
        )
    print(_summary(outcome))
    return 0 if outcome.accepted else GATE_REJECTED


def promote(settings: Settings, args: argparse.Namespace, publish: Publish | None = None) -> int:
    """``sentinel promote [--version N]``: move @champion to the candidate (or N)."""
    ref = ModelRegistry(settings, publish=publish).promote(
        _arg(args, "version"), reason=_arg(args, "reason", "sentinel promote")
    )
    previous = ref.tags.get("sentinel.previous_champion", "none")
    print(f"{ref.name} version {ref.version} is @champion (previous: {previous})")
    return 0


def rollback(settings: Settings, args: argparse.Namespace, publish: Publish | None = None) -> int:
    """``sentinel rollback``: give @champion back to the version it replaced."""
    ref = ModelRegistry(settings, publish=publish).rollback(
        reason=_arg(args, "reason", "sentinel rollback")
    )
    print(f"{ref.name} version {ref.version} is @champion again")
    return 0


def validate(settings: Settings, args: argparse.Namespace) -> int:
    """The data gate alone; writes the GX report (DVC stage ``validate``)."""
    from training.dataset import read_transactions
    from training.quality import validate_transactions

    report_dir = Path(_arg(args, "report_dir", settings.data_dir / "reports"))
    report = validate_transactions(read_transactions(args.input), report_dir)
    print(f"data gate passed in {report.seconds:.1f}s; report {report.path}")
    return 0


def evaluate(settings: Settings, args: argparse.Namespace) -> int:
    """Score a registered alias on the test window of ``--input`` (DVC stage ``evaluate``)."""
    from lifecycle.pipeline import featurize
    from training.dataset import make_dataset, read_transactions
    from training.model_metrics import evaluate as measure
    from training.split import days_since, split

    registry = ModelRegistry(settings)
    alias = _arg(args, "alias", CANDIDATE)
    ref = registry.resolve(alias) or registry.resolve(CHAMPION)
    if ref is None:
        from training.errors import AliasNotSetError

        raise AliasNotSetError(settings.mlflow.model_name, alias, ": run sentinel train first")
    model = registry.load(ref)
    dataset = make_dataset(read_transactions(args.input), str(args.input))
    X, names = featurize(dataset, settings)
    parts = split(dataset.frame, training_config(settings, args).split)
    frame, rows = dataset.frame, parts.test
    order = [names.index(n) for n in model.feature_names]
    metrics = measure(
        frame["is_fraud"].to_numpy()[rows],
        model.score(X[rows][:, order]),
        frame["card_id"].to_numpy()[rows],
        days_since(frame["event_time"].iloc[rows], parts.windows.test[0]),
        model.thresholds.review,
    )
    result = {"version": ref.version, "alias": ref.alias, **parts.windows.as_params(), **metrics}
    out = _arg(args, "out")
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(result, indent=1))
    print(json.dumps(result))
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m cli.train")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("validate", "train", "evaluate"):
        p = sub.add_parser(name)
        p.add_argument("--input", required=True)
        if name == "validate":
            p.add_argument("--report-dir", default=None)
            continue
        for flag in ("--train-days", "--delay-days", "--test-days", "--validation-days"):
            p.add_argument(flag, type=int, default=None)
        p.add_argument("--train-start", default=None, help="YYYY-MM-DD")
        if name == "train":
            p.add_argument("--num-trees", type=int, default=None)
            p.add_argument("--alert-budget", type=float, default=None, help="max %% flagged")
            p.add_argument("--promote", action="store_true")
            p.add_argument("--metrics-out", default=None)
        else:
            p.add_argument("--alias", default=CANDIDATE)
            p.add_argument("--out", default=None)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m cli.train`` (the DVC stages)."""
    from sentinel.errors import SentinelError
    from sentinel.redact import configure_logging, redact_text

    args = _parser().parse_args(argv)
    settings = Settings()
    configure_logging(settings, settings.log_level, "%(levelname)s %(name)s %(message)s")
    handler = {"validate": validate, "train": train, "evaluate": evaluate}[args.command]
    try:
        return handler(settings, args)
    except SentinelError as exc:
        print(f"error: {redact_text(str(exc), settings)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
