#!/usr/bin/env bash
# `make demo`: the main job on a fresh install. Grows as the engine does.
set -euo pipefail
WDSR=${1:-wdsr}
"$WDSR" --version
"$WDSR" train --config demo --print-config
