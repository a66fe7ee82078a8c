"""Where installed and bundled files are, with or without a ROS install."""
from __future__ import annotations

from pathlib import Path

PACKAGE = 'hydranet_ros'
SOURCE_ROOT = Path(__file__).resolve().parent.parent


def share_dir() -> Path | None:
    """share/hydranet_ros of the installed package, or None when not installed with colcon."""
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
    except ImportError:
        return None
    try:
        return Path(get_package_share_directory(PACKAGE))
    except (PackageNotFoundError, LookupError, ValueError, OSError):  # OSError: AMENT_PREFIX_PATH unset
        return None


def installed_or_source(folder: str, name: str) -> Path:
    """share/hydranet_ros/<folder>/<name> when installed, else the source tree's <folder>/<name>."""
    candidates = []
    share = share_dir()
    if share is not None:
        candidates.append(share / folder / name)
    candidates.append(SOURCE_ROOT / folder / name)
    for path in candidates:
        if path.is_file():
            return path
    return candidates[0]


def config_path(name: str) -> Path:
    """A file of the package's config/ folder (installed, else in the source tree)."""
    return installed_or_source('config', name)
