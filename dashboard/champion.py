"""The registry's side of the dashboard: the champion serving now, its reference profile, and
where each version's training run is in the MLflow UI."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from dashboard.prometheus import shown
from dashboard.timeline import run_url
from drift.reference_profile import ProfileError, ReferenceProfile, load_profile
from sentinel.settings import Settings
from training.errors import RegistryError

if TYPE_CHECKING:
    from lifecycle.registry import ModelRegistry

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Champion:
    """``version`` None: no champion (or no registry); ``problem`` says why in one line."""

    version: str | None
    profile: ReferenceProfile | None
    runs: dict[str, str] = field(default_factory=dict)
    problem: str = ""


def ui_base(settings: Settings) -> str | None:
    """The MLflow UI for links: the setting, else an http(s) tracking URI without userinfo."""
    if settings.dashboard.mlflow_ui_url:
        return settings.dashboard.mlflow_ui_url
    uri = settings.tracking_uri
    if not uri.startswith(("http://", "https://")):
        return None
    return shown(uri)


def run_links(registry: ModelRegistry, ui: str | None) -> dict[str, str]:
    """Model version -> its training run's URL (or the run id, without a UI to link to)."""
    links: dict[str, str] = {}
    experiments: dict[str, str] = {}
    for ref in registry.versions():
        if not ref.run_id:
            continue
        if ui is None:
            links[ref.version] = ref.run_id
            continue
        if ref.run_id not in experiments:
            experiments[ref.run_id] = registry.run_experiment_id(ref.run_id)
        links[ref.version] = run_url(ui, experiments[ref.run_id], ref.run_id)
    return links


def read_champion(settings: Settings, cache_dir: Path) -> Champion:
    """The champion, its profile and the run links; registry trouble becomes ``problem``."""
    from lifecycle.registry import CHAMPION, ModelRegistry

    registry = ModelRegistry(settings)
    try:
        ref = registry.resolve(CHAMPION)
        runs = run_links(registry, ui_base(settings))
    except RegistryError as exc:
        return Champion(None, None, {}, f"registry: {exc}")
    if ref is None:
        return Champion(None, None, runs, f"no @champion of {settings.mlflow.model_name} yet")
    try:
        profile = load_profile(registry, ref, cache_dir / ref.name / f"v{ref.version}")
    except (ProfileError, RegistryError) as exc:
        return Champion(ref.version, None, runs, str(exc))
    return Champion(ref.version, profile, runs)
