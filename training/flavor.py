"""The MLflow face of Sentinel's model artifact (one of the two modules that import mlflow).

:func:`write_mlmodel` writes the ``MLmodel`` file of a directory saved by
:meth:`FraudModel.save`: the project's own ``sentinel_fraud`` flavor (what the worker and the
retrainer load, through :mod:`training.artifact`) and a ``python_function`` flavor whose loader
is this module, installed with the package and never shipped in the artifact, so that
``mlflow.pyfunc.load_model`` and ``mlflow models serve`` work too without a pickle.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from mlflow.models import Model, ModelSignature
from mlflow.pyfunc import add_to_model
from mlflow.types import ColSpec, Schema

from training import artifact
from training.model import FraudModel

REQUIREMENTS = "requirements.txt"


class FraudPyfunc:
    """``predict`` on a DataFrame of the features: ``score`` and ``decision`` columns."""

    def __init__(self, model: FraudModel) -> None:
        self.model = model

    def predict(self, model_input: pd.DataFrame, params: Any = None) -> pd.DataFrame:
        model = self.model
        X = model_input[list(model.feature_names)].to_numpy(dtype=np.float64)
        scores = model.score(X)
        return pd.DataFrame({"score": scores, "decision": model.decide(scores)})


def _load_pyfunc(path: str, model_config: Any = None) -> FraudPyfunc:
    """MLflow's pyfunc loader hook (``loader_module: training.flavor``): plain files only."""
    return FraudPyfunc(artifact.read(Path(path), uri=path))


def write_mlmodel(directory: Path, model: FraudModel) -> Path:
    """Write ``MLmodel`` and ``requirements.txt`` next to the model's files; returns the dir."""
    directory = Path(directory)
    (directory / REQUIREMENTS).write_text("\n".join(pip_requirements()) + "\n")
    mlmodel = Model(signature=signature(model.feature_names))
    files = {"description": artifact.DESCRIPTION}
    if model.booster is not None:
        files["booster"] = artifact.BOOSTER
    mlmodel.add_flavor(artifact.FLAVOR, format_version=artifact.FORMAT_VERSION,
                       kind=model.kind, **files)
    add_to_model(mlmodel, loader_module=__name__)  # type: ignore[no-untyped-call]
    mlmodel.save(str(directory / artifact.MLMODEL))
    return directory


def signature(feature_names: tuple[str, ...]) -> ModelSignature:
    """Input: one double column per feature; output: score and decision."""
    return ModelSignature(
        inputs=Schema([ColSpec("double", name) for name in feature_names]),
        outputs=Schema([ColSpec("double", "score"), ColSpec("string", "decision")]),
    )


def pip_requirements() -> list[str]:
    """What scoring imports, pinned to the installed versions."""
    out = []
    for package in ("sentinel-fraud", "lightgbm", "numpy", "pandas"):
        try:
            out.append(f"{package}=={version(package)}")
        except PackageNotFoundError:
            out.append(package)
    return out
