"""A plain (non-editable) install creates and upgrades databases on its own."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
import venv
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _run(*args: str | Path, **kwargs) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    result = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=900, **kwargs)
    assert result.returncode == 0, f"{args}\n{result.stdout}\n{result.stderr}"
    return result


def test_every_package_is_declared_for_the_wheel() -> None:
    """The wheel lists its packages by hand (for the alembic folder's mapping): each
    package folder of the source must be in that list, or an install lacks it."""
    declared = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {
        ".".join(init.parent.relative_to(REPO).parts)
        for top in ("healthsim_models", "healthsim_state")
        for init in (REPO / top).rglob("__init__.py")
    }
    assert found - declared == set()


@pytest.mark.slow
def test_wheel_installs_and_creates_a_database(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", dist, REPO)
    (wheel,) = dist.glob("healthsim_store-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "healthsim_models/_alembic/env.py" in names
    assert "healthsim_models/_alembic/script.py.mako" in names
    assert any(n.startswith("healthsim_models/_alembic/versions/") and n.endswith(".py") for n in names)
    assert "healthsim_models/_alembic/versions/20261201_0002_population_reference.py" in names
    assert "healthsim_models/population.py" in names
    assert {"healthsim_state/reference/loader.py", "healthsim_state/interfaces/cli/reference.py"} <= names
    assert not any(n.startswith("tests/") for n in names)

    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    bin_dir = env_dir / "bin"
    _run(bin_dir / "python", "-m", "pip", "install", "--quiet", wheel)

    home = tmp_path / "user-home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HEALTHSIM_", "PYTHONPATH"))}
    env["HEALTHSIM_HOME"] = str(home)
    # Run away from the source tree, so only the installed package can answer.
    out = _run(bin_dir / "healthsim", "db", "upgrade", cwd=tmp_path, env=env).stdout
    assert (home / "healthsim.duckdb").is_file()
    assert "pending:  none" in out
    assert "population.svi_county" in out
    status = _run(bin_dir / "healthsim", "reference", "status", cwd=tmp_path, env=env).stdout
    assert "svi_county" in status and "not loaded" in status

    probe = (
        "from healthsim_models import schema_version, create_store_engine\n"
        "print(schema_version.script_location())\n"
        "e = create_store_engine()\n"
        "print(schema_version.current_revision(e) == schema_version.head_revision())\n"
    )
    lines = _run(bin_dir / "python", "-c", probe, cwd=tmp_path, env=env).stdout.split()
    assert "site-packages" in lines[0]
    assert lines[1] == "True"
