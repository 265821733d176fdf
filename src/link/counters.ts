// The COUNTERS frame's body: the relay's counters as JSON text, checked
// against one schema on both ends. The relay refuses to send a snapshot that
// does not match it (counted, the link stays up); the sidecar's decoder turns
// a body that does not match into a protocol error. So the sidecar gets a
// typed object, never a cast of whatever arrived. The maps keyed by reason
// ("allocate:401", "no-channel") are bounded in keys and key length: each key
// becomes a metric label downstream.
import { z } from 'zod';
import type { ServerStats } from '../shared/stats.ts';
import { GC_BUCKETS, GC_TYPES, type GcTotals } from '../shared/gc.ts';

/** Most keys in one reason map (responses, dropped); the relay's own sets are a few dozen. */
export const MAX_REASON_KEYS = 256;
/** Longest reason key, in UTF-16 units. */
export const MAX_REASON_KEY_CHARS = 64;

const count = z.number();
const flow = z.object({ packets: count, bytes: count });
const relayed = z.object({ toPeer: flow, toClient: flow });
const reasons = z
  .record(z.string().min(1).max(MAX_REASON_KEY_CHARS), count)
  .refine((m) => Object.keys(m).length <= MAX_REASON_KEYS, { message: `more than ${MAX_REASON_KEYS} keys` });

const perTransport = <T extends z.ZodTypeAny>(t: T) => z.object({ udp: t, tcp: t, tls: t });
const transportStats = z.object({ allocations: count, relayedByFamily: z.object({ ipv4: relayed, ipv6: relayed }), errors: count });
const perStream = <T extends z.ZodTypeAny>(t: T) => z.object({ tcp: t, tls: t });

const serverStats = z.object({
  allocations: count,
  permissions: count,
  channels: count,
  reservations: count.optional(),
  relayed,
  relayedByFamily: z.object({ ipv4: relayed, ipv6: relayed }).optional(),
  responses: reasons,
  dropped: reasons,
  refused: reasons.optional(),
  byTransport: perTransport(transportStats).optional(),
}) satisfies z.ZodType<ServerStats>;

/**
 * The relay's TCP/TLS connections (StreamConnections.stats()): open,
 * accepted, refused or closed by `transport:reason`, messages dropped for a
 * client that does not read.
 */
const streamCounters = z.object({
  open: perStream(count),
  accepted: perStream(count),
  closed: reasons,
  writeDropped: perStream(count),
});

/** The link's own queue counters as the relay's end reports them (LinkConnection.stats()). */
const linkCounters = z.object({
  framesOut: count,
  bytesOut: count,
  packetsDropped: count,
  telemetryDropped: count,
  oversizeDropped: count,
  queueBytes: count,
  queueFrames: count,
  socketBufferedBytes: count,
  blockedTimes: count,
  flushes: count,
  framesIn: count,
  bytesIn: count,
  readerBufferedBytes: count,
});

/** The relay's sidecar transport (SidecarTransport.stats()). */
const transportCounters = z.object({
  connected: z.boolean(),
  connects: count,
  packetsIn: count,
  packetsOut: count,
  droppedDisconnected: count,
  droppedBackpressure: count,
  droppedHeldOverflow: count,
  heldForAck: count,
  ackTimeouts: count,
  ackFailures: count,
  openPortsFailedNoLink: count,
  snapshotsSent: count,
  snapshotPortFailures: count,
  logsDropped: count,
  link: linkCounters.nullable(),
});

/**
 * The relay's log lines forwarded over the link (LinkLogDestination.stats()),
 * and the session lines its clients' budget suppressed (LogHub.perSource).
 */
const logCounters = z.object({ forwarded: count, local: count, dropped: count, rateLimited: count.optional() });

/** The relay's GC totals (shared/gc.ts): per type, count and seconds per histogram bucket. */
const perBucket = z.array(count).length(GC_BUCKETS.length + 1);
const gcTotals = z.partialRecord(z.enum(GC_TYPES), z.object({ count: perBucket, seconds: perBucket })) satisfies z.ZodType<GcTotals>;

export type TransportCounters = z.infer<typeof transportCounters>;
export type LogCounters = z.infer<typeof logCounters>;
export type StreamCounters = z.infer<typeof streamCounters>;
/** What a COUNTERS frame carries: ServerStats plus the relay's link transport, log forwarder, TCP/TLS connection and GC counters. */
export type RelayCounters = ServerStats & { transport?: TransportCounters; logs?: LogCounters; streams?: StreamCounters; gc?: GcTotals };

export const relayCountersSchema = serverStats.extend({
  transport: transportCounters.optional(),
  logs: logCounters.optional(),
  streams: streamCounters.optional(),
  gc: gcTotals.optional(),
}) satisfies z.ZodType<RelayCounters>;

type Checked = { ok: true; counters: RelayCounters } | { ok: false; reason: string };

function check(value: unknown): Checked {
  const r = relayCountersSchema.safeParse(value);
  if (r.success) return { ok: true, counters: r.data };
  const issue = r.error.issues[0]!;
  return { ok: false, reason: `${issue.path.join('.') || 'counters'}: ${issue.message}` };
}

/** Why `c` may not be sent as a COUNTERS frame, or undefined when it may. */
export function countersProblem(c: RelayCounters): string | undefined {
  const r = check(c);
  return r.ok ? undefined : r.reason;
}

/** A COUNTERS body (JSON text) as typed counters, or the reason it is not one. */
export function parseCounters(json: string): Checked {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch (e) {
    return { ok: false, reason: `not JSON: ${(e as Error).message}` };
  }
  return check(value);
}
