"""The bundled specs: the paper's search spaces (.qs) and tasks (.task), shipped as package data."""
from __future__ import annotations

from importlib import resources
from pathlib import Path


def path(name: str) -> Path:
    """The bundled spec `name` (e.g. "hadamard_ent_rot.qs"), whether qtc is a wheel, an editable
    install or a checkout: importlib.resources finds the package's files where they are installed,
    not where this file sits. Resolved, so that an editable install's link tree shows the checkout's
    path in error messages. The file need not exist: callers check."""
    return Path(str(resources.files(__name__).joinpath(name))).resolve()
