# Sourced by scripts/*: create or reuse the virtualenv for this exact requirements set.
# The venv lives outside the clone, keyed by the hash of requirements.txt + requirements.lock (the
# whole environment pinned with each file's sha256, scripts/lock), so CI runs and later sessions on the
# same machine reuse it instead of reinstalling torch/TF, and a venv built on another day is the same
# environment.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
KEY="$(cat "$ROOT/requirements.txt" "$ROOT/requirements.lock" | sha256sum | cut -c1-12)"
VENV="${TFPORT_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/tfport/venvs/$KEY}"
if [ ! -x "$VENV/bin/python" ] || [ ! -f "$VENV/.complete" ]; then
    echo "setting up virtualenv $VENV (first run only; torch and TensorFlow are large)" >&2
    python3.11 -m venv "$VENV"
    # the lock is the whole environment with each file's sha256 (scripts/lock): pip first, then the rest,
    # every file checked against its hash, nothing resolved anew
    grep '^pip==' "$ROOT/requirements.lock" > "$VENV/pip.lock"
    "$VENV/bin/pip" install -q --require-hashes --no-deps -r "$VENV/pip.lock"
    "$VENV/bin/pip" install -q --require-hashes --no-deps -r "$ROOT/requirements.lock"
    touch "$VENV/.complete"
fi
# The project itself runs from the source tree: no install step that could go stale.
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-3}"
export PATH="$VENV/bin:$PATH"
PY="$VENV/bin/python"
# parity's comparison kernel (parity/native), built once per source into ~/.cache/tfport/native so that no
# timed or first run pays for it; without a C compiler parity compares in numpy
"$PY" -m parity.native >/dev/null 2>&1 || true
