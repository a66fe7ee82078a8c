"""Where installed and bundled files are, with or without a ROS install."""
from __future__ import annotations

from pathlib import Path

PACKAGE = 'hydranet_ros'
BUNDLED_MODEL = 'hydranet_default.pt'
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


def bundled_model_path() -> Path:
    """The default checkpoint: share/hydranet_ros/models/, else the source tree's models/."""
    candidates = []
    share = share_dir()
    if share is not None:
        candidates.append(share / 'models' / BUNDLED_MODEL)
    candidates.append(SOURCE_ROOT / 'models' / BUNDLED_MODEL)
    for path in candidates:
        if path.is_file():
            return path
    return candidates[0]
