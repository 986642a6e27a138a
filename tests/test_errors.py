"""Every project exception is importable from both package tops."""

from __future__ import annotations

import healthsim_models
import healthsim_state
from healthsim_models import errors


def _project_errors() -> list[type]:
    found, todo = [], [errors.HealthSimError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return [cls for cls in found if cls.__module__ == errors.__name__]


def test_every_project_error_is_exported_from_both_packages() -> None:
    names = {cls.__name__ for cls in _project_errors()}
    assert len(names) >= 15
    for package in (healthsim_models, healthsim_state):
        missing = sorted(n for n in names if n not in package.__all__ or getattr(package, n) is not getattr(errors, n))
        assert not missing, f"{package.__name__} does not export {missing}"
