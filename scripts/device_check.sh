#!/bin/sh
# The one-shot check of a GPU or NPU machine (scripts/device_check.py says what it runs). Uses $PYTHON, else the
# tests environment's interpreter (.tox/cpu) when there is one, else python3 on PATH.
here=$(cd "$(dirname "$0")/.." && pwd)
if [ -n "$PYTHON" ]; then py=$PYTHON
elif [ -x "$here/.tox/cpu/bin/python" ]; then py="$here/.tox/cpu/bin/python"
else py=python3
fi
exec "$py" "$here/scripts/device_check.py" "$@"
