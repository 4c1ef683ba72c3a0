"""Which packages a wheel carries; everything else about the build is in pyproject.toml.

Every package under monitor/ is found (so a new subpackage is never left out of wheels), and the
top-level folders alembic/ and plugins/ are carried inside the package as monitor._alembic and
monitor._plugins, with their subfolders. Their folders are mapped in pyproject.toml
([tool.setuptools.package-dir]); `[tool.setuptools.packages.find]` cannot name a package after a
folder of another name, hence this file.
"""
from pathlib import Path

from setuptools import find_namespace_packages, find_packages, setup

ROOT = Path(__file__).resolve().parent
# package name -> its folder at the top of the repository (as in pyproject.toml's package-dir)
CARRIED = {"monitor._alembic": "alembic", "monitor._plugins": "plugins"}


def carried(package: str, folder: str) -> list[str]:
    """`package` and its subpackages, folders without an __init__.py included (alembic/versions)."""
    found = find_namespace_packages(str(ROOT / folder), exclude=["__pycache__", "*.__pycache__"])
    return [package, *(f"{package}.{sub}" for sub in found)]


setup(packages=[*find_packages(str(ROOT), include=["monitor", "monitor.*"]),
                *(name for package, folder in CARRIED.items() for name in carried(package, folder))])
