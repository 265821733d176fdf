#!/usr/bin/env bash
# Installs turnpike as two systemd services on this host, from this checkout
# (e.g. /opt/turnpike; the relay's user must be able to read it):
#   sudo deploy/systemd/install.sh            build, install, enable and start
#   sudo deploy/systemd/install.sh --no-build --no-start
# What it sets up (each step only when missing or different; it says which):
#   - Debian packages, node modules, the XDP object, the compiled TypeScript
#     (scripts/setup.sh), unless --no-build;
#   - system users and groups: the sidecar's (turnpike) and the relay's
#     (turnpike-relay), no login shell, no home;
#   - /var/lib/turnpike (the sidecar's, 0711 so the relay can reach the link
#     socket in it) and /etc/turnpike (root's);
#   - /etc/turnpike/turnpike.env (TURN settings both halves read, with a
#     generated TURN REST secret) and sidecar.env (settings only the sidecar
#     sees), both 0600 and never overwritten;
#   - the two services and the relay's two socket units (TURN over TCP on
#     3478, over TLS on 443: socket activation), rendered from this
#     directory, in /etc/systemd/system; then daemon-reload and `enable --now`
#     when systemd runs, unless --no-start (the TLS socket only when
#     turnpike.env sets TURNPIKE_TLS_CERT).
# Overrides (used by the tests, which install into a temporary root):
#   TURNPIKE_INSTALL_ROOT  prefix for every path written (default none)
#   TURNPIKE_SIDECAR_USER / TURNPIKE_RELAY_USER   user names
#   TURNPIKE_NODE          node binary (default: node on PATH)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
install_dir="$(cd "$here/../.." && pwd)"
root="${TURNPIKE_INSTALL_ROOT:-}"
sidecar_user="${TURNPIKE_SIDECAR_USER:-turnpike}"
relay_user="${TURNPIKE_RELAY_USER:-turnpike-relay}"
build=1 start=1
for arg in "$@"; do
  case "$arg" in
    --no-build) build= ;;
    --no-start) start= ;;
    *) echo "usage: $0 [--no-build] [--no-start]" >&2; exit 2 ;;
  esac
done

say() { printf '[install] %s\n' "$*"; }
die() { printf '[install] error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root (sudo $0)"
if [ -n "$build" ]; then
  say "building (scripts/setup.sh)"
  bash "$install_dir/scripts/setup.sh"
fi
node="${TURNPIKE_NODE:-$(command -v node || true)}"
[ -x "$node" ] || die "node not found; install Node.js 20 first"
[ "$("$node" -p "process.versions.node.split('.')[0]")" -ge 20 ] || die "$node is Node.js $("$node" -v); turnpike needs Node.js 20 or later (Debian 12's own nodejs is 18)"
for entry in sidecar relay; do
  [ -f "$install_dir/dist/src/cmd/$entry.js" ] || die "$install_dir/dist/src/cmd/$entry.js missing; build first (npm ci && npm run build)"
done

# A system account with a group of its own, no login shell, no home.
ensure_user() {
  local user="$1" what="$2"
  if id -u "$user" >/dev/null 2>&1; then
    say "user $user exists (uid $(id -u "$user"))"
  else
    useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin --comment "$what" "$user"
    say "created system user $user (uid $(id -u "$user"))"
  fi
}
ensure_user "$relay_user" "turnpike relay (unprivileged)"
ensure_user "$sidecar_user" "turnpike sidecar"
relay_uid="$(id -u "$relay_user")"
relay_gid="$(id -g "$relay_user")"
relay_group="$(id -gn "$relay_user")"

# The relay loads its code as its own user: an unreadable checkout would only crash-loop.
if ! runuser -u "$relay_user" -- test -r "$install_dir/dist/src/cmd/relay.js"; then
  die "$relay_user cannot read $install_dir (directories need o+x, files o+r); install under /opt, not a home directory"
fi

# A directory with this owner and mode, made or corrected.
ensure_dir() {
  local dir="$1" owner="$2" mode="$3"
  if [ -d "$dir" ] && [ "$(stat -c '%U:%G %a' "$dir")" = "$owner $mode" ]; then
    say "$dir in place ($owner, $mode)"
  else
    install -d -o "${owner%%:*}" -g "${owner##*:}" -m "$mode" "$dir"
    say "set up $dir ($owner, $mode)"
  fi
}
etc_dir="$root/etc/turnpike"
state_dir="$root/var/lib/turnpike"
unit_dir="$root/etc/systemd/system"
ensure_dir "$etc_dir" root:root 755
ensure_dir "$state_dir" "$sidecar_user:$sidecar_user" 711
mkdir -p "$unit_dir"

# An env file written once: the operator's edits are never overwritten.
ensure_env() {
  local file="$1"
  if [ -e "$file" ]; then
    say "$file exists; left as it is"
  else
    (umask 077; cat > "$file")
    say "wrote $file (0600)"
  fi
}
ensure_env "$etc_dir/turnpike.env" <<ENV
# turnpike: settings both halves read (the relay sees this file and nothing
# else of ours). Names: README, "Configuration". Restart both after a change:
#   systemctl restart turnpike-sidecar turnpike-relay
TURNPIKE_LISTEN_PORT=3478
TURNPIKE_PORT_RANGE=49152-65535
TURNPIKE_REALM=turnpike
# Clients authenticate with TURN REST credentials signed with this secret
# (node dist/src/cmd/credential.js --user alice --ttl 3600), or set TURNPIKE_USERS.
TURNPIKE_REST_SECRET=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')
#TURNPIKE_ALLOWED_PEERS=
#TURNPIKE_DENIED_PEERS=
#TURNPIKE_LOG=info
# TURN over TLS on 443 (turnpike-relay-tls.socket): PEM files the relay's user can read.
#TURNPIKE_TLS_CERT=
#TURNPIKE_TLS_KEY=
ENV
ensure_env "$etc_dir/sidecar.env" <<'ENV'
# turnpike: settings only the sidecar sees (never the relay).
# The NIC carrying TURN traffic turns the XDP fast path on:
#TURNPIKE_INTERFACE=eth0
#TURNPIKE_XDP_MODE=native
#TURNPIKE_PUBLIC_IPV4=
#TURNPIKE_PUBLIC_IPV6=
#TURNPIKE_ADMIN=127.0.0.1:9469
#TURNPIKE_SENTRY_DSN=
#TURNPIKE_POSTHOG_KEY=
#OTEL_EXPORTER_OTLP_ENDPOINT=
ENV

changed=
for unit in turnpike-sidecar.service turnpike-relay.service turnpike-relay-tcp.socket turnpike-relay-tls.socket; do
  rendered="$(sed -e "s|@INSTALL_DIR@|$install_dir|g" -e "s|@NODE@|$node|g" \
    -e "s|@ETC_DIR@|$etc_dir|g" -e "s|@STATE_DIR@|$state_dir|g" \
    -e "s|@SIDECAR_USER@|$sidecar_user|g" -e "s|@RELAY_USER@|$relay_user|g" -e "s|@RELAY_GROUP@|$relay_group|g" \
    -e "s|@RELAY_UID@|$relay_uid|g" -e "s|@RELAY_GID@|$relay_gid|g" "$here/$unit")"
  if [ -f "$unit_dir/$unit" ] && [ "$(cat "$unit_dir/$unit")" = "$rendered" ]; then
    say "$unit_dir/$unit up to date"
  else
    printf '%s\n' "$rendered" > "$unit_dir/$unit"
    chmod 644 "$unit_dir/$unit"
    say "installed $unit_dir/$unit"
    changed=1
  fi
done

if [ -n "$start" ] && [ -z "$root" ] && [ -d /run/systemd/system ]; then
  systemctl daemon-reload
  # Running services pick up changed units by a restart; stopped ones just start.
  if [ -n "$changed" ]; then systemctl try-restart turnpike-sidecar.service turnpike-relay.service; fi
  # The sockets first: the relay takes what is listening when it starts.
  sockets=turnpike-relay-tcp.socket
  if grep -q '^TURNPIKE_TLS_CERT=.' "$etc_dir/turnpike.env"; then sockets="$sockets turnpike-relay-tls.socket"; fi
  systemctl enable --now $sockets
  systemctl enable --now turnpike-sidecar.service turnpike-relay.service
  say "enabled and started $sockets, turnpike-sidecar and turnpike-relay (journalctl -u 'turnpike-*' -f)"
else
  say "not started (systemd not running here, --no-start, or an install root); start with:"
  say "  systemctl daemon-reload && systemctl enable --now turnpike-relay-tcp.socket turnpike-sidecar turnpike-relay"
  say "  (and turnpike-relay-tls.socket once TURNPIKE_TLS_CERT/KEY are set)"
fi
