# Sourced by scripts/test: a Python with nats-py (the "publisher that is not ours" in the tests) and
# grpcio (the gRPC server and client of tests/tests/grpc.rs), in a project-local virtualenv; exports
# EDGEPLANE_PYTHON.
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
  if ! "$venv/bin/python" -c 'import grpc' 2>/dev/null; then
    echo "== installing grpcio"
    "$venv/bin/pip" install -q 'grpcio>=1.60,<2'
  fi
  export EDGEPLANE_PYTHON="$venv/bin/python"
}
ensure_python_nats
