"""One rosbags typestore for every message this package reads or writes.

rosbags knows the standard ROS 2 Kilted messages. vision_msgs, this package's own messages and
any other type met on a live graph are added from their ``.msg`` definitions, found the way
ROS finds them: ``share/<package>/msg/<Name>.msg`` under each AMENT_PREFIX_PATH entry, then
this source tree (msg/ and deps/vision_msgs/msg/) so the ROS-free tools work from a checkout.
"""
from __future__ import annotations

import os
import re
import threading
from pathlib import Path

from rosbags.typesys import Stores, get_types_from_msg, get_typestore

from hydranet_ros.paths import SOURCE_ROOT

_SOURCE_MSG_DIRS = {'hydranet_ros': SOURCE_ROOT / 'msg', 'vision_msgs': SOURCE_ROOT / 'deps' / 'vision_msgs' / 'msg'}
_TYPE_RE = re.compile(r'^[A-Za-z][\w]*/msg/[A-Za-z][\w]*$')
_lock = threading.Lock()
_store = None


class UnknownTypeError(LookupError):
    """A message type whose definition is neither built in nor found on disk."""


def find_definition(msgtype: str) -> Path | None:
    """The .msg file of 'pkg/msg/Name', or None."""
    if not _TYPE_RE.match(msgtype):
        return None
    package, _, name = msgtype.split('/')
    for prefix in filter(None, os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep)):
        path = Path(prefix) / 'share' / package / 'msg' / f'{name}.msg'
        if path.is_file():
            return path
    source = _SOURCE_MSG_DIRS.get(package)
    if source is not None and (source / f'{name}.msg').is_file():
        return source / f'{name}.msg'
    return None


def _register(store, msgtype: str, seen: set):
    if msgtype in store.types or msgtype in seen:
        return
    seen.add(msgtype)
    path = find_definition(msgtype)
    if path is None:
        raise UnknownTypeError(f"no definition for message type '{msgtype}' (not built into rosbags and no "
                               f"share/{msgtype.split('/')[0]}/msg/*.msg on AMENT_PREFIX_PATH)")
    types = get_types_from_msg(path.read_text(), msgtype)
    # Field types this definition uses: register those first.
    for fields in types.values():
        for _, field in fields[1]:
            for name in _nested_names(field):
                _register(store, name, seen)
    store.register(types)


def _nested_names(field) -> list:
    """Message type names referenced by a rosbags field descriptor."""
    names = []
    kind, detail = field[0], field[1]
    if getattr(kind, 'name', '') == 'NAME':
        names.append(detail)
    elif isinstance(detail, tuple) and detail and isinstance(detail[0], tuple):
        inner_kind, inner = detail[0][0], detail[0][1]
        if getattr(inner_kind, 'name', '') == 'NAME':
            names.append(inner)
    return names


def typestore():
    """The shared typestore (Kilted plus vision_msgs and hydranet_ros)."""
    global _store
    with _lock:
        if _store is None:
            store = get_typestore(Stores.ROS2_KILTED)
            for t in ('vision_msgs/msg/Detection2DArray', 'vision_msgs/msg/LabelInfo',
                      'hydranet_ros/msg/OpticalFlow', 'hydranet_ros/msg/InferenceStats'):
                _register(store, t, set())
            _store = store
        return _store


def ensure_type(msgtype: str):
    """Make msgtype known to the shared typestore (from its .msg file); UnknownTypeError if absent."""
    store = typestore()
    with _lock:
        _register(store, msgtype, set())
    return store
