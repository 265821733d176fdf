// The launcher's half of TURN over TCP and TLS: it makes the listening
// sockets (every listen address; TCP on the listen port, TLS on tlsPort,
// which may be 443 and need root) in the host's network namespace, and the
// relay inherits them on the stdio slots after its lifeline. The relay
// accepts and parses TLS and TURN framing itself; nothing privileged reads a
// byte of a client's stream. The sockets live as long as the launcher, so a
// restarted relay finds them again, and connections arriving in between wait
// in the backlog.
import type { Logger } from 'pino';
import type { Config } from '../config/schema.ts';
import { readableBy } from '../config/paths.ts';
import { familyOf } from '../shared/endpoint.ts';
import { platformReason } from '../net/native.ts';
import { closeFd, listenTcp } from '../net/tcp-listen.ts';
import { streamOptions, streamSockets } from '../relay/transport/streams.ts';
import { streamSocketEntry } from '../relay/transport/stream-sockets.ts';

export interface RelayStreams {
  /** The listening sockets' fds here, in the order of the relay's stdio slots from `firstChildFd`. */
  readonly fds: number[];
  /** streamFds for the relay's environment. */
  readonly entries: string[];
}

/**
 * Makes the sockets `config` asks for; the relay finds them from
 * `firstChildFd` on. Throws why it cannot (a port in use, a certificate the
 * relay user cannot read), having closed what it made.
 */
export function openRelayStreams(config: Config, firstChildFd: number, relayIdentity: { uid: number; gid: number } | undefined, log: Logger): RelayStreams {
  const options = streamOptions(config);
  const wanted = streamSockets(options, config.listenAddresses, config.listenPort);
  if (wanted.length === 0) return { fds: [], entries: [] };
  const unsupported = platformReason();
  if (unsupported) {
    log.warn({ reason: unsupported }, 'TURN over TCP/TLS not served: the launcher cannot make listening sockets here');
    return { fds: [], entries: [] };
  }
  // The relay reads (and re-reads on renewal) the certificate as its own user.
  const files = options.tls?.files;
  for (const file of files ? [files.cert, files.key] : []) {
    if (relayIdentity && !readableBy(file, relayIdentity.uid, relayIdentity.gid)) {
      throw new Error(`the relay user cannot read ${file}; TLS is served by the relay: make the certificate and key (and their directories) readable by it`);
    }
  }
  const fds: number[] = [];
  const entries: string[] = [];
  try {
    for (const s of wanted) {
      const fd = listenTcp(familyOf(s.address), s.address, s.port);
      fds.push(fd);
      entries.push(streamSocketEntry({ ...s, fd: firstChildFd + entries.length }));
    }
  } catch (e) {
    fds.forEach(closeFd);
    throw new Error(`cannot listen for TURN over TCP/TLS: ${(e as Error).message}`);
  }
  return { fds, entries };
}
