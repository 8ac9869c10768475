# Shared by scripts/demo and scripts/test: make .venv when missing and install the
# project into it (with the extras named in $1, "" for none: pass it explicitly, since a
# sourced script would otherwise see the caller's arguments). Re-installs only when
# pyproject.toml, setup.py or a C source changed since the last install (an install
# compiles the hot path's C extensions, see memactor/_native).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
extras="${1:-}"
python="${PYTHON:-python3}"
if [ ! -x "$venv/bin/python" ]; then
  "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
    echo "memactor needs Python 3.11 or newer; $python is $("$python" --version 2>&1)" >&2
    exit 2
  }
  echo "Creating $venv ..." >&2
  "$python" -m venv "$venv"
fi
stamp="$venv/.memactor-installed${extras:+-$extras}"
# What an install depends on: the project's metadata and the C sources it compiles.
inputs=("$root/pyproject.toml" "$root/setup.py" "$root"/memactor/_native/*.[ch])
current() {  # installed since those last changed: with these extras, or any extras
  local candidate input candidates=("$stamp")
  if [ -z "$extras" ]; then candidates+=("$venv"/.memactor-installed-*); fi
  for candidate in "${candidates[@]}"; do
    [ -f "$candidate" ] || continue
    for input in "${inputs[@]}"; do
      if [ -e "$input" ] && [ "$input" -nt "$candidate" ]; then continue 2; fi
    done
    return 0
  done
  return 1
}
if ! current; then
  echo "Installing memactor${extras:+[$extras]} into .venv (log: .venv/install.log) ..." >&2
  log="$venv/install.log"
  if ! { "$venv/bin/python" -m pip install --quiet --upgrade pip &&
         "$venv/bin/python" -m pip install --quiet -e "$root${extras:+[$extras]}"; } >"$log" 2>&1; then
    cat "$log" >&2
    echo "Installing memactor failed; the log above is also in $log" >&2
    exit 2
  fi
  touch "$stamp"
fi
