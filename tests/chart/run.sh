#!/usr/bin/env bash
# Chart, deploy/ and Dockerfile tests (GitHub issue 9).
#
#   bash tests/chart/run.sh            run the tests
#   bash tests/chart/run.sh --update   first regenerate the generated files (deploy/portier.yaml and
#                                      the default policies in charts/portier/values.yaml), then test
#   bash tests/chart/run.sh -- ARGS    pass ARGS to pytest (e.g. -- -k webhook -x)
#
# Idempotent: creates tests/chart/.venv once, reinstalls only when requirements.txt changes.
# Needs python3 (>= 3.10) with venv and network access to PyPI on the first run.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv"
req="$here/requirements.txt"
stamp="$venv/.requirements.sha256"
python="${PYTHON:-python3}"

update=0
pytest_args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --update) update=1 ;;
        --) shift; pytest_args+=("$@"); break ;;
        *) pytest_args+=("$1") ;;
    esac
    shift
done

want="$(sha256sum "$req" | cut -d' ' -f1)"
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
    echo "chart tests: setting up $venv" >&2
    rm -rf "$venv"
    "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
        --retries 5 --timeout 60 -r "$req"
    echo "$want" > "$stamp"
fi

export PYTHONDONTWRITEBYTECODE=1
# The tests run from this directory: make a relative PORTIER_BIN absolute first.
if [ -n "${PORTIER_BIN:-}" ]; then
    PORTIER_BIN="$(realpath "$PORTIER_BIN")"
    export PORTIER_BIN
fi
if [ "$update" = 1 ]; then
    "$venv/bin/python" "$here/sync.py" --write
fi
cd "$here"
exec "$venv/bin/python" -m pytest "${pytest_args[@]}"
