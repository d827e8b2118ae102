"""The MLflow pyfunc face of a FraudModel (one of the two modules that import mlflow).

``mlflow.pyfunc.load_model(uri)`` gives a generic model whose ``predict`` takes a DataFrame of
the features and returns ``score`` and ``decision``; ``.unwrap_python_model().model`` is the
FraudModel itself, for the worker's fast path.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.pyfunc import PythonModel
from mlflow.types import ColSpec, Schema

from training.model import FraudModel

MODEL_DIR_ARTIFACT = "fraud_model"


class FraudPyfunc(PythonModel):
    """Wraps a FraudModel saved as plain files in the ``fraud_model`` artifact."""

    def __init__(self) -> None:
        self.model: FraudModel | None = None

    def load_context(self, context: Any) -> None:
        self.model = FraudModel.load(Path(context.artifacts[MODEL_DIR_ARTIFACT]))

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.DataFrame:
        model = self.model
        if model is None:
            raise RuntimeError("FraudPyfunc used before load_context")
        X = model_input[list(model.feature_names)].to_numpy(dtype=np.float64)
        scores = model.score(X)
        return pd.DataFrame({"score": scores, "decision": model.decide(scores)})


def signature(feature_names: tuple[str, ...]) -> ModelSignature:
    """Input: one double column per feature; output: score and decision."""
    return ModelSignature(
        inputs=Schema([ColSpec("double", name) for name in feature_names]),
        outputs=Schema([ColSpec("double", "score"), ColSpec("string", "decision")]),
    )


def pip_requirements() -> list[str]:
    """Explicit requirements (inference by MLflow is ~100x slower): what scoring imports."""
    out = []
    for package in ("mlflow", "lightgbm", "numpy", "pandas", "scikit-learn"):
        try:
            out.append(f"{package}=={version(package)}")
        except PackageNotFoundError:
            out.append(package)
    return out
