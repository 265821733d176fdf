// Transport addresses from the transport layer, checked and put in the same
// canonical text the codec produces for XOR-PEER-ADDRESS (RFC 5952 for IPv6),
// so permission and channel lookups keyed by text match whichever side the
// address came from.
import { isIP } from 'node:net';
import { addressToBytes, formatAddress } from '../../shared/ip.ts';
import type { Family, TransportAddress } from './types.ts';

/** The address with canonical text, or undefined when it is not a valid IP transport address of its family. */
export function canonicalAddress(a: TransportAddress): TransportAddress | undefined {
  if (!Number.isInteger(a.port) || a.port < 0 || a.port > 65535 || typeof a.address !== 'string') return undefined;
  if (a.family === 4) return isIP(a.address) === 4 ? a : undefined;
  if (a.family !== 6) return undefined;
  // 16 bytes only for text that node:net accepts as IPv6 (it checks): one validation per datagram.
  const bytes = addressToBytes(a.address);
  if (bytes === undefined || bytes.length !== 16) return undefined;
  const text = formatAddress(bytes);
  return text === a.address ? a : { family: 6, address: text, port: a.port };
}

/** A family's key in the per-family records (relayed ports, relay addresses). */
export function familyName(f: Family): 'v4' | 'v6' {
  return f === 4 ? 'v4' : 'v6';
}
