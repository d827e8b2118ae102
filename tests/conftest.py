"""The suite's fixtures and collectors live in one plugin module, :mod:`tests.plugin`."""

pytest_plugins = ["tests.plugin"]
