"""The package's DDS transport profile (config/fastdds.xml): when it applies, and turning it on.

Used by the entry point (before rclpy.init, so the node's participant is created with it) and
by the launch file (for every process it starts). Pure environment logic; no ROS import.
"""
from __future__ import annotations

import os
from pathlib import Path

from hydranet_ros.paths import config_path

PROFILE_FILE = 'fastdds.xml'
PROFILE_VARIABLE = 'FASTDDS_DEFAULT_PROFILES_FILE'
#: Set to 0 / false / off to keep the middleware's own transport settings.
SWITCH_VARIABLE = 'HYDRANET_DDS_PROFILE'
#: A user's own Fast DDS configuration: any of these means hands off.
_USER_SETTINGS = (PROFILE_VARIABLE, 'FASTRTPS_DEFAULT_PROFILES_FILE', 'FASTDDS_BUILTIN_TRANSPORTS')


def profile_decision(environ=None, cwd: Path | None = None) -> tuple[Path | None, str]:
    """(profile to load or None, why) for this environment."""
    env = os.environ if environ is None else environ
    if env.get(SWITCH_VARIABLE, '').strip().lower() in ('0', 'false', 'off', 'no'):
        return None, f'{SWITCH_VARIABLE}={env[SWITCH_VARIABLE]}'
    path = config_path(PROFILE_FILE)
    if env.get(PROFILE_VARIABLE) and Path(env[PROFILE_VARIABLE]) == path:
        return path, 'package profile, set by the launcher'
    for name in _USER_SETTINGS:
        if env.get(name):
            return None, f'{name} is set by the user'
    rmw = env.get('RMW_IMPLEMENTATION', '') or 'rmw_fastrtps_cpp'
    if not rmw.startswith('rmw_fastrtps'):
        return None, f'RMW_IMPLEMENTATION={rmw} is not Fast DDS'
    if ((cwd or Path.cwd()) / 'DEFAULT_FASTDDS_PROFILES.xml').is_file():
        return None, 'DEFAULT_FASTDDS_PROFILES.xml in the working directory'
    if not path.is_file():
        return None, f'{path} is missing'
    return path, 'package profile'


def apply_profile(environ=None) -> tuple[Path | None, str]:
    """Point Fast DDS at the package profile where it applies; returns profile_decision's answer."""
    env = os.environ if environ is None else environ
    path, why = profile_decision(env)
    if path is not None:
        env[PROFILE_VARIABLE] = str(path)
    return path, why
