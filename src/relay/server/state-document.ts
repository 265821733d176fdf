// The relay's state as a document that outlives the process: every
// allocation with its permissions, channels (active and held), reservation,
// remaining lifetimes, and the nonce key, so a restarted or upgraded relay
// carries on where the old one stopped and its clients see neither 437 nor 438.
// The sidecar holds it for the relay (link STATE frames) without reading it.
//
// Times: the server's clock is monotonic per process (transport/clock.ts), so
// its readings mean nothing to the next process. The document stores each
// deadline as ms remaining at `savedAt` (wall clock); the reader subtracts the
// wall time since then (never a negative amount: a clock stepped back does not
// stretch lifetimes) and puts the deadline on its own clock.
//
// Versions: `version` names the layout. A reader accepts every version up to
// its own, migrating older layouts forward (MIGRATIONS); a newer document than
// it knows is refused (an older relay does not guess), and the relay starts
// empty. A layout change adds a version and a migration, never edits one.
import { z } from 'zod';
import { CHANNEL_HOLD_MS, type RelayState, type RestoredAllocation } from './state.ts';
import type { Family, TransportAddress } from './types.ts';

export const STATE_DOCUMENT_VERSION = 1;

const family = z.union([z.literal(4), z.literal(6)]);
const port = z.number().int().min(0).max(65535);
const address = z.object({ family, address: z.string().min(1).max(64), port });
const ms = z.number().finite();
const base64 = z.string().regex(/^[A-Za-z0-9+/]*={0,2}$/);
const ports = z.object({ v4: port.optional(), v6: port.optional() });

const allocationV1 = z.object({
  client: address,
  local: z.object({ family, port }),
  username: z.string(),
  user: z.string(),
  key: base64,
  ports,
  remainingMs: ms,
  transactionKey: z.string(),
  response: base64,
  permissions: z.array(z.object({ peerIp: z.string().min(1).max(64), remainingMs: ms })),
  /** expiresInMs: to the binding's expiry (negative for a held channel, whose hold lasts CHANNEL_HOLD_MS more). */
  channels: z.array(z.object({ number: z.number().int().min(0x4000).max(0x7fff), peer: address, held: z.boolean(), expiresInMs: ms })),
  reservation: z.object({ token: z.string(), family, port, remainingMs: ms }).optional(),
});

const documentV1 = z.object({
  version: z.literal(1),
  software: z.string(),
  /** Wall-clock ms (Date.now) when the remaining lifetimes were taken. */
  savedAt: ms,
  relayAddresses: z.object({ v4: z.string().optional(), v6: z.string().optional() }),
  nonceKey: base64,
  allocations: z.array(allocationV1),
});

/** The current layout. */
export type StateDocument = z.infer<typeof documentV1>;
type SavedAllocation = z.infer<typeof allocationV1>;

/** Older layouts, each parsed by its own schema and carried to the next version (none yet: 1 is the first). */
const MIGRATIONS: Record<number, { schema: z.ZodType; forward: (doc: unknown) => unknown }> = {};

export type ParsedState = { ok: true; doc: StateDocument; from: number } | { ok: false; reason: string };

/** Reads a document of this version or an older one. Never throws. */
export function parseStateDocument(bytes: Uint8Array): ParsedState {
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'));
  } catch (e) {
    return { ok: false, reason: `not JSON: ${(e as Error).message}` };
  }
  const version = (json as { version?: unknown } | null)?.version;
  if (typeof version !== 'number' || !Number.isInteger(version) || version < 1) return { ok: false, reason: 'no version field' };
  if (version > STATE_DOCUMENT_VERSION) return { ok: false, reason: `state document version ${version} is newer than this relay's ${STATE_DOCUMENT_VERSION}` };
  let doc: unknown = json;
  for (let v = version; v < STATE_DOCUMENT_VERSION; v++) {
    const m = MIGRATIONS[v];
    if (m === undefined) return { ok: false, reason: `no migration from state document version ${v}` };
    const r = m.schema.safeParse(doc);
    if (!r.success) return { ok: false, reason: `version ${v}: ${z.prettifyError(r.error)}` };
    doc = m.forward(r.data);
  }
  const r = documentV1.safeParse(doc);
  if (!r.success) return { ok: false, reason: z.prettifyError(r.error) };
  return { ok: true, doc: r.data, from: version };
}

export function encodeStateDocument(doc: StateDocument): Buffer {
  return Buffer.from(JSON.stringify(doc), 'utf8');
}

const b64 = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64');
const bytes = (s: string) => new Uint8Array(Buffer.from(s, 'base64'));
const addr = (a: TransportAddress) => ({ family: a.family, address: a.address, port: a.port });

export interface DocumentHeader {
  readonly software: string;
  readonly relayAddresses: { readonly v4?: string; readonly v6?: string };
  readonly nonceKey: Uint8Array;
}

/** The tables as a document; `now` is the server's clock, `wallNow` Date.now(). */
export function saveState(state: RelayState, header: DocumentHeader, now: number, wallNow: number): StateDocument {
  const allocations: SavedAllocation[] = [];
  for (const a of state.byFiveTuple.values()) {
    const r = a.reservation;
    allocations.push({
      client: addr(a.client),
      local: { family: a.local.family, port: a.local.port },
      username: a.username,
      user: a.user,
      key: b64(a.key),
      ports: { ...a.ports },
      remainingMs: a.expiresAt - now,
      transactionKey: a.transactionKey,
      response: b64(a.response),
      permissions: [...a.permissions.values()].map((p) => ({ peerIp: p.peerIp, remainingMs: p.expiresAt - now })),
      channels: [...a.channelsByNumber.values()].map((c) => ({ number: c.number, peer: addr(c.peer), held: c.state === 'held', expiresInMs: c.binding.expiresAt - now })),
      ...(r !== undefined ? { reservation: { token: r.token, family: r.family, port: r.port, remainingMs: r.timer.at - now } } : {}),
    });
  }
  const { v4, v6 } = header.relayAddresses;
  return {
    version: STATE_DOCUMENT_VERSION,
    software: header.software,
    savedAt: wallNow,
    relayAddresses: { ...(v4 ? { v4 } : {}), ...(v6 ? { v6 } : {}) },
    nonceKey: b64(header.nonceKey),
    allocations,
  };
}

export interface RestoreCounts {
  allocations: number;
  /** Allocations whose lifetime ran out while no relay ran. */
  expired: number;
  permissions: number;
  channels: number;
}

/**
 * Puts the document's allocations into `state` (empty, fresh), deadlines on
 * this process's clock. What expired while no relay ran is left out (whole
 * allocations) or expires at the first timer (permissions, channels).
 */
export function restoreState(state: RelayState, doc: StateDocument, now: number, wallNow: number): RestoreCounts {
  const elapsed = Math.max(0, wallNow - doc.savedAt);
  const at = (remaining: number) => now + remaining - elapsed;
  const counts: RestoreCounts = { allocations: 0, expired: 0, permissions: 0, channels: 0 };
  for (const s of doc.allocations) {
    if (at(s.remainingMs) <= now) {
      counts.expired++;
      continue;
    }
    const ports: { v4?: number; v6?: number } = {};
    if (s.ports.v4 !== undefined) ports.v4 = s.ports.v4;
    if (s.ports.v6 !== undefined) ports.v6 = s.ports.v6;
    const restored: RestoredAllocation = {
      client: s.client as TransportAddress,
      local: s.local as { family: Family; port: number },
      username: s.username,
      user: s.user,
      key: bytes(s.key),
      ports,
      expiresAt: at(s.remainingMs),
      transactionKey: s.transactionKey,
      response: bytes(s.response),
      permissions: s.permissions.map((p) => ({ peerIp: p.peerIp, expiresAt: at(p.remainingMs) })),
      // A held channel whose hold ended while no relay ran is gone.
      channels: s.channels
        .filter((c) => at(c.expiresInMs) + (c.held ? CHANNEL_HOLD_MS : 0) > now)
        .map((c) => ({ number: c.number, peer: c.peer as TransportAddress, held: c.held, bindingExpiresAt: at(c.expiresInMs) })),
      reservation: s.reservation && at(s.reservation.remainingMs) > now
        ? { token: s.reservation.token, family: s.reservation.family, port: s.reservation.port, expiresAt: at(s.reservation.remainingMs) }
        : undefined,
    };
    state.restore(restored);
    counts.allocations++;
    counts.permissions += restored.permissions.length;
    counts.channels += restored.channels.length;
  }
  return counts;
}

export function nonceKeyOf(doc: StateDocument): Uint8Array {
  return bytes(doc.nonceKey);
}
