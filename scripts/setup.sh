#!/usr/bin/env bash
# Installs what the project needs to run (`npm run setup`) or to be tested
# (`npm run setup:test`). Idempotent: when everything is present it only checks, in a second.
#
#   setup.sh          node_modules, redis-server
#   setup.sh --test   also PostgreSQL server binaries, jq, curl, python3-httpx, chromium
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

test_deps=false
for arg in "$@"; do
  case "$arg" in
    --test) test_deps=true ;;
    -h | --help)
      sed -n '2,6s/^# \{0,1\}//p' "$0"
      exit 0
      ;;
    *)
      echo "setup: unknown option: $arg (expected --test)" >&2
      exit 2
      ;;
  esac
done

say() { printf 'setup: %s\n' "$*"; }

# --- Node and node_modules ---------------------------------------------------------------
if ! command -v node >/dev/null 2>&1; then
  say "node is missing: install Node.js 20.19 or newer (https://nodejs.org/)" >&2
  exit 1
fi
node_version=$(node -p 'process.versions.node')
if ! node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 19) ? 0 : 1)'; then
  say "node $node_version is too old: Node.js 20.19 or newer is needed" >&2
  exit 1
fi
say "node $node_version: found"

if [[ ! -f node_modules/.package-lock.json ]] || [[ package-lock.json -nt node_modules/.package-lock.json ]] || [[ package.json -nt node_modules/.package-lock.json ]]; then
  # The committed lock file lists every platform's optional packages, so `npm ci` installs
  # exactly it and leaves the checkout as it was; `npm install` only when there is no lock.
  if [[ -f package-lock.json ]]; then
    say "node_modules: installing (npm ci)"
    npm ci --no-audit --no-fund --loglevel=error
  else
    say "node_modules: installing (npm install)"
    npm install --no-audit --no-fund --loglevel=error
  fi
  touch node_modules/.package-lock.json
else
  say "node_modules: up to date"
fi

# --- System packages (Debian/Ubuntu apt) ---------------------------------------------------
# Each missing tool adds its package; all of them are installed with one apt-get run.
missing=()
need() { # need <apt package>
  missing+=("$1")
}

if command -v redis-server >/dev/null 2>&1; then
  say "redis-server: found ($(command -v redis-server))"
else
  need redis-server
fi

if $test_deps; then
  initdb=""
  for candidate in /usr/lib/postgresql/*/bin/initdb; do
    if [[ -x "$candidate" ]]; then initdb="$candidate"; fi
  done
  if [[ -z "$initdb" ]] && command -v pg_config >/dev/null 2>&1; then
    bindir=$(pg_config --bindir 2>/dev/null || true)
    if [[ -x "$bindir/initdb" ]]; then initdb="$bindir/initdb"; fi
  fi
  # As root the tests run the server as the `postgres` user, which the Debian package creates.
  if [[ -n "$initdb" ]] && { [[ $EUID -ne 0 ]] || id postgres >/dev/null 2>&1; }; then
    say "PostgreSQL server: found ($initdb)"
  else
    need postgresql
  fi

  if command -v jq >/dev/null 2>&1; then say "jq: found"; else need jq; fi
  if command -v curl >/dev/null 2>&1; then say "curl: found"; else need curl; fi

  # The original guide's Python snippet runs with the system python, whatever python3 is first
  # on PATH.
  if [[ -x /usr/bin/python3 ]] && /usr/bin/python3 -c 'import httpx' >/dev/null 2>&1; then
    say "python3-httpx: found (/usr/bin/python3)"
  else
    need python3-httpx
  fi

  if command -v chromium >/dev/null 2>&1; then
    say "chromium: found ($(command -v chromium))"
  else
    need chromium
  fi
fi

if ((${#missing[@]} == 0)); then
  say "everything is installed"
  exit 0
fi

apt_command="apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${missing[*]}"
if ! command -v apt-get >/dev/null 2>&1; then
  say "cannot install ${missing[*]}: no apt-get here; install them with your package manager (macOS: brew install redis postgresql jq)" >&2
  exit 1
fi
if [[ $EUID -eq 0 ]]; then
  sudo=()
elif command -v sudo >/dev/null 2>&1; then
  sudo=(sudo)
else
  say "installing needs root; run as root: $apt_command" >&2
  exit 1
fi

say "installing with apt-get: ${missing[*]}"
${sudo[@]+"${sudo[@]}"} apt-get update -qq -o DPkg::Lock::Timeout=600
${sudo[@]+"${sudo[@]}"} env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=600 "${missing[@]}" >/dev/null
for package in "${missing[@]}"; do
  say "$package: installed"
done
