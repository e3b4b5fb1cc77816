# Sourced by scripts/test: a Python with nats-py (the "publisher that is not ours" in the tests),
# in a project-local virtualenv; exports EDGEPLANE_PYTHON.
ensure_python_nats() {
  local venv="$PWD/target/tools/pyvenv"
  if [ ! -x "$venv/bin/python" ]; then
    echo "== creating $venv"
    python3 -m venv "$venv"
  fi
  if ! "$venv/bin/python" -c 'import nats' 2>/dev/null; then
    echo "== installing nats-py"
    "$venv/bin/pip" install -q 'nats-py>=2.6,<3'
  fi
  export EDGEPLANE_PYTHON="$venv/bin/python"
}
ensure_python_nats
