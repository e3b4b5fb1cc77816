# Sourced by scripts/test: makes prometheus and promtool available and exports PROMETHEUS_BIN and
# PROMTOOL_BIN. Order: the variables, PATH, then install: apt's prometheus when root with apt, else the
# official release tarball into target/tools.
ensure_prometheus() {
  if [ -x "${PROMETHEUS_BIN:-}" ] && [ -x "${PROMTOOL_BIN:-}" ]; then return 0; fi
  if command -v prometheus >/dev/null && command -v promtool >/dev/null; then
    export PROMETHEUS_BIN="$(command -v prometheus)" PROMTOOL_BIN="$(command -v promtool)"; return 0
  fi
  local dir="$PWD/target/tools/prometheus"
  if [ -x "$dir/prometheus" ] && [ -x "$dir/promtool" ]; then
    export PROMETHEUS_BIN="$dir/prometheus" PROMTOOL_BIN="$dir/promtool"; return 0
  fi
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "== installing prometheus (Debian package)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
    if command -v prometheus >/dev/null && command -v promtool >/dev/null; then
      export PROMETHEUS_BIN="$(command -v prometheus)" PROMTOOL_BIN="$(command -v promtool)"; return 0
    fi
  fi
  echo "== installing prometheus (release tarball)"
  local version=2.53.2 arch
  case "$(uname -m)" in x86_64) arch=amd64 ;; aarch64) arch=arm64 ;; *) echo "no prometheus for $(uname -m)" >&2; return 1 ;; esac
  mkdir -p "$dir"
  curl -fsSL "https://github.com/prometheus/prometheus/releases/download/v$version/prometheus-$version.linux-$arch.tar.gz" \
    | tar -xz -C "$dir" --strip-components=1
  export PROMETHEUS_BIN="$dir/prometheus" PROMTOOL_BIN="$dir/promtool"
  [ -x "$PROMETHEUS_BIN" ] || { echo "no prometheus could be installed" >&2; return 1; }
}
ensure_prometheus
echo "== prometheus: $PROMETHEUS_BIN ($("$PROMETHEUS_BIN" --version 2>&1 | head -1))"
