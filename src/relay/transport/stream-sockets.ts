// The listening TCP sockets a relay behind the sidecar serves TURN over TCP
// and TLS on. That relay has no network of its own (a namespace with only
// loopback), so it cannot listen where clients are: the privileged side makes
// the sockets in the host's namespace (port 443 needs a capability) and the
// relay inherits them. A socket belongs to the namespace it was made in, and
// so do the connections accepted from it, whichever process accepts them.
//
// The launcher names them in streamFds (TURNPIKE_STREAM_FDS), one
// `TRANSPORT:HOST:PORT=FD` each (`tcp:0.0.0.0:3478=4`, `tls:[::]:5349=5`).
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
