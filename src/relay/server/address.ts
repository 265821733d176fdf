// Transport addresses from the transport layer, checked and put in the same
// canonical text the codec produces for XOR-PEER-ADDRESS (RFC 5952 for IPv6),
// so permission and channel lookups keyed by text match whichever side the
// address came from.
import { isIP } from 'node:net';
import { addressToBytes, formatAddress } from '../stun/index.ts';
import type { TransportAddress } from './types.ts';

/** The address with canonical text, or undefined when it is not a valid IP transport address of its family. */
export function canonicalAddress(a: TransportAddress): TransportAddress | undefined {
  if (!Number.isInteger(a.port) || a.port < 0 || a.port > 65535 || typeof a.address !== 'string') return undefined;
  const kind = isIP(a.address);
  if (a.family === 4) return kind === 4 ? a : undefined;
  if (a.family !== 6 || kind !== 6) return undefined;
  const bytes = addressToBytes(a.address);
  if (bytes === undefined) return undefined;
  const text = formatAddress(bytes);
  return text === a.address ? a : { family: 6, address: text, port: a.port };
}
