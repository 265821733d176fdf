// The listening TCP sockets a relay behind the sidecar serves TURN over TCP
// and TLS on. That relay has no network of its own (a namespace with only
// loopback), so it cannot listen where clients are: the privileged side makes
// the sockets in the host's namespace (port 443 needs a capability) and the
// relay inherits them. A socket belongs to the namespace it was made in, and
// so do the connections accepted from it, whichever process accepts them.
//
// The launcher names them in streamFds (TURNPIKE_STREAM_FDS), one
// `TRANSPORT:HOST:PORT=FD` each (`tcp:0.0.0.0:3478=4`, `tls:[::]:5349=5`).
// Under systemd, socket units make them (deploy/systemd/turnpike-relay-*.socket)
// and hand them over by the sd_listen_fds(3) protocol: LISTEN_PID (this
// process), LISTEN_FDS (how many, from fd 3 on), LISTEN_FDNAMES (their
// FileDescriptorName=, colon separated), read by systemdStreamSockets.
import { STREAM_FD } from '../../config/schema.ts';
import type { StreamSocket } from './streams.ts';
import type { StreamTransport } from './stream-connections.ts';

/** The inherited sockets named in `entries` (already checked against STREAM_FD by the schema). */
export function inheritedStreamSockets(entries: readonly string[]): StreamSocket[] {
  return entries.map((entry) => {
    const m = STREAM_FD.exec(entry);
    if (!m) throw new Error(`not a stream socket entry: ${entry}`);
    return { transport: m[1] as StreamTransport, address: (m[2] ?? m[3])!, port: Number(m[4]), fd: Number(m[5]) };
  });
}

/** The entry for one socket, as inheritedStreamSockets reads it back. */
export function streamSocketEntry(s: Required<StreamSocket>): string {
  const host = s.address.includes(':') ? `[${s.address}]` : s.address;
  return `${s.transport}:${host}:${s.port}=${s.fd}`;
}

/** The first fd sd_listen_fds(3) passes. */
const SD_LISTEN_FDS_START = 3;
/** More would be a misconfigured unit: one socket per address and transport. */
const SD_LISTEN_FDS_MAX = 64;

/** The transport a passed socket's name says: `tcp`/`tls`, or a socket unit's name ending in `-tcp.socket`/`-tls.socket` (systemd's default name). */
function transportOfName(name: string): StreamTransport | undefined {
  const m = /^(?:.*-)?(tcp|tls)(?:\.socket)?$/.exec(name);
  return m ? (m[1] as StreamTransport) : undefined;
}

/**
 * The listening sockets systemd passed this process (sd_listen_fds(3)):
 * none unless LISTEN_PID is `pid`. The variables are removed from `env`
 * either way, as sd_listen_fds(unset_environment=1) does, so nothing this
 * process starts takes them for its own. Address and port are left empty:
 * the listener reads them from the socket. Throws a clear error when the
 * variables are malformed or a name is neither tcp nor tls.
 */
export function systemdStreamSockets(env: NodeJS.ProcessEnv, pid: number): StreamSocket[] {
  const listenPid = env.LISTEN_PID;
  const listenFds = env.LISTEN_FDS;
  const names = env.LISTEN_FDNAMES;
  delete env.LISTEN_PID;
  delete env.LISTEN_FDS;
  delete env.LISTEN_FDNAMES;
  if (listenPid === undefined || listenFds === undefined) return [];
  if (!/^\d+$/.test(listenPid) || Number(listenPid) !== pid) return []; // meant for another process
  if (!/^\d+$/.test(listenFds) || Number(listenFds) > SD_LISTEN_FDS_MAX) throw new Error(`LISTEN_FDS=${listenFds}: expected a count of at most ${SD_LISTEN_FDS_MAX}`);
  const n = Number(listenFds);
  const named = names === undefined ? [] : names.split(':');
  if (named.length !== n) throw new Error(`LISTEN_FDNAMES names ${named.length} sockets, LISTEN_FDS=${n}: name each tcp or tls (FileDescriptorName= in the socket unit)`);
  return named.map((name, i) => {
    const transport = transportOfName(name);
    if (transport === undefined) throw new Error(`socket ${i + SD_LISTEN_FDS_START} is named "${name}": expected tcp or tls (FileDescriptorName= in the socket unit)`);
    return { transport, address: '', port: 0, fd: SD_LISTEN_FDS_START + i };
  });
}
