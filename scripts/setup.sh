#!/usr/bin/env bash
# Idempotent set-up run before `npm start` and `npm test`: installs what is
# missing (Debian packages, node modules, the BPF object, the compiled
# TypeScript, and for `npm start` as root the relay's own system user) and
# does nothing when everything is already in place.
#   setup.sh               before npm start
#   setup.sh --test        before npm test (also coturn, tcpdump, chromium, libnss3-tools; no user)
#   setup.sh --relay-user NAME   only create the relay user NAME if missing
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-}"

say() { printf '[setup] %s\n' "$*" >&2; }

# The relay's user: a system account (uid from the system range), no login
# shell, no home directory, a group of its own; created only when missing.
ensure_relay_user() {
  local user="$1"
  if id -u "$user" >/dev/null 2>&1; then return 0; fi
  say "creating the relay's system user $user"
  useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin \
    --comment "turnpike relay (unprivileged)" "$user"
}
if [ "$mode" = "--relay-user" ]; then
  ensure_relay_user "${2:?usage: setup.sh --relay-user NAME}"
  exit 0
fi

# Debian packages: clang/llvm/libbpf-dev build the XDP object, libbpf1 is
# loaded at run time through koffi, bpftool/iproute2/ethtool are used by the
# loader's tests, coturn provides the interop client and the reference relay.
need_pkgs=()
have() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
for p in clang llvm libbpf-dev libbpf1 bpftool iproute2 ethtool make gcc libc6-dev; do
  have "$p" || need_pkgs+=("$p")
done
if [ "$mode" = "--test" ]; then
  for p in coturn tcpdump; do have "$p" || need_pkgs+=("$p"); done
  # The browser interop test (test/interop/chromium.test.ts): Debian's
  # Chromium, driven over the DevTools protocol on a pipe, and certutil to
  # trust the test's own CA in a temporary NSS database.
  for p in chromium libnss3-tools; do have "$p" || need_pkgs+=("$p"); done
  # systemd-analyze verifies the shipped units (test/deploy/systemd.test.ts).
  command -v systemd-analyze >/dev/null || need_pkgs+=(systemd)
fi
if [ "${#need_pkgs[@]}" -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    say "installing Debian packages: ${need_pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # Packages such as coturn start a daemon on install; the tests only need
    # their binaries, and set-up must not leave a service running (or stop one
    # it did not start). A policy-rc.d that answers 101 ("action forbidden")
    # keeps invoke-rc.d and deb-systemd-invoke from starting anything; it is
    # removed again, and an operator's own policy-rc.d is left alone.
    own_policy=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
      printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
      chmod 755 /usr/sbin/policy-rc.d
      own_policy=1
      trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
    if [ -n "$own_policy" ]; then rm -f /usr/sbin/policy-rc.d; trap - EXIT; fi
  else
    say "missing packages (${need_pkgs[*]}); install them as root. Continuing without them."
  fi
fi

# Node modules: npm ci when missing or when the lock file changed since.
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "npm ci"
  npm ci --no-audit --no-fund --loglevel=error >&2
fi

# The XDP object (make rebuilds only when a source changed).
if command -v clang >/dev/null; then
  make -s -C bpf >&2
else
  say "clang not found: the XDP object is not built; eBPF mode auto falls back to userspace"
fi

# TypeScript: compile when any source is newer than the last build.
stamp=dist/.build-stamp
if [ ! -f "$stamp" ] || [ -n "$(find src test bench tsconfig.json package-lock.json -newer "$stamp" \( -name '*.ts' -o -name '*.json' \) -print -quit 2>/dev/null)" ]; then
  say "compiling TypeScript"
  npx tsc -p tsconfig.json
  touch "$stamp"
fi

# The relay runs as a user of its own under `npm start` as root. Only the
# default name is created; a TURNPIKE_RELAY_USER the operator chose must exist.
if [ -z "$mode" ] && [ "$(id -u)" -eq 0 ] && [ "${TURNPIKE_RELAY_USER:-turnpike-relay}" = turnpike-relay ]; then
  ensure_relay_user turnpike-relay
fi
