"""The wheel installs everything inside the ``unipixel_pl`` namespace (no generic top-level names)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.conftest import REPO_ROOT


def test_wheel_has_only_the_unipixel_pl_namespace(tmp_path: Path) -> None:
    source = tmp_path / "source"  # build from a copy so setuptools' build/ folder never lands in the checkout
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    for name in tracked.stdout.splitlines():
        if (REPO_ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO_ROOT / name, source / name)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), "."],
        cwd=source,
        check=True,
    )
    (wheel,) = tmp_path.glob("unipixel_pl-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top_level == {"unipixel_pl"}
    installed = {
        "unipixel_pl": "unipixel_pl",
        "datamodules": "unipixel_pl/datamodules",
        "callbacks": "unipixel_pl/callbacks",
    }
    sources = [line for line in tracked.stdout.splitlines() if line.endswith(".py") and "/" in line]
    expected = {installed[s.split("/")[0]] + s[s.index("/") :] for s in sources if s.split("/")[0] in installed}
    assert expected - set(names) == set(), "modules missing from the wheel (add their package to pyproject.toml)"
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "unipixel = unipixel_pl.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
