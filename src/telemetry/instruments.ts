// Every metric the sidecar exports, declared once: name, kind, unit,
// description and the attributes it may carry. createInstruments builds them
// all on one meter; metrics.ts records into them. The names, units and
// attributes are what dashboards and alerts query: change them as an API.
import { GC_BUCKETS } from '../shared/gc.ts';
import { ValueType, type BatchObservableResult, type Counter, type Histogram, type Meter, type Observable } from '@opentelemetry/api';

/**
 * counter: added to as events happen (synchronous). histogram: one value
 * recorded per event (synchronous, fractional). observable-counter
 * (monotonic sum) and observable-gauge: observed from the latest snapshots
 * when a reader collects.
 */
type Kind = 'counter' | 'histogram' | 'observable-counter' | 'observable-gauge';

interface InstrumentSpec {
  readonly name: string;
  readonly kind: Kind;
  readonly unit: string;
  readonly description: string;
  /** Attribute keys a point may carry; low-cardinality values only. */
  readonly attributes: readonly string[];
  /** A histogram's bucket boundaries. */
  readonly buckets?: readonly number[];
}

export const INSTRUMENTS = {
  bytes: { name: 'turnpike.relayed.bytes', kind: 'observable-counter', unit: 'By', description: 'Application payload relayed, by datapath (xdp, sidecar: its userspace fast path, userspace: the relay), direction, output family and client transport (udp, tcp, tls; the fast paths relay udp clients only)', attributes: ['datapath', 'direction', 'family', 'transport'] },
  packets: { name: 'turnpike.relayed.packets', kind: 'observable-counter', unit: '{packet}', description: 'Packets relayed, by datapath (xdp, sidecar, userspace), direction, output family and client transport', attributes: ['datapath', 'direction', 'family', 'transport'] },
  // Firezone's relay exports these two (no attributes); the same bytes as turnpike.relayed.bytes, summed per datapath.
  firezoneEbpfBytes: { name: 'data_relayed_ebpf_bytes', kind: 'observable-counter', unit: 'By', description: 'Application payload relayed by the kernel fast path (Firezone relay name; turnpike.relayed.bytes with datapath=xdp, summed)', attributes: [] },
  firezoneUserspaceBytes: { name: 'data_relayed_userspace_bytes', kind: 'observable-counter', unit: 'By', description: 'Application payload relayed in userspace (Firezone relay name; turnpike.relayed.bytes with datapath sidecar or userspace, summed)', attributes: [] },
  datapath: { name: 'turnpike.datapath', kind: 'observable-gauge', unit: '1', description: 'The datapath relaying channel data: 1 on the one that runs (xdp, with its attach mode, or userspace)', attributes: ['datapath', 'mode'] },
  xdpPass: { name: 'turnpike.xdp.passed', kind: 'observable-counter', unit: '{frame}', description: 'Frames the XDP program passed to the network stack, by reason', attributes: ['reason'] },
  xdpDrop: { name: 'turnpike.xdp.dropped', kind: 'observable-counter', unit: '{frame}', description: 'Frames the XDP program dropped, by reason', attributes: ['reason'] },
  perfLost: { name: 'turnpike.perf.events_lost', kind: 'counter', unit: '{event}', description: 'Kernel diagnostic events lost before the sidecar read them', attributes: [] },
  diagEvents: { name: 'turnpike.xdp.diagnostics', kind: 'counter', unit: '{event}', description: 'Kernel diagnostic events, by kind and reason', attributes: ['kind', 'reason'] },
  allocations: { name: 'turnpike.allocations.active', kind: 'observable-gauge', unit: '{allocation}', description: 'Allocations the relay holds, by client transport (udp, tcp, tls)', attributes: ['transport'] },
  permissions: { name: 'turnpike.permissions.active', kind: 'observable-gauge', unit: '{permission}', description: 'Permissions the relay holds', attributes: [] },
  channels: { name: 'turnpike.channels.active', kind: 'observable-gauge', unit: '{channel}', description: 'Channel bindings the relay holds', attributes: [] },
  reservations: { name: 'turnpike.reservations.active', kind: 'observable-gauge', unit: '{port}', description: 'Relayed ports held for a RESERVATION-TOKEN (EVEN-PORT)', attributes: [] },
  responses: { name: 'turnpike.responses', kind: 'observable-counter', unit: '{response}', description: 'TURN/STUN responses sent by the relay, by method and code', attributes: ['method', 'code'] },
  responseErrors: { name: 'turnpike.responses.errors', kind: 'observable-counter', unit: '{response}', description: 'Error responses the relay sent (refusals of every kind), by client transport', attributes: ['transport'] },
  streamActive: { name: 'turnpike.stream.connections.active', kind: 'observable-gauge', unit: '{connection}', description: 'TURN-over-TCP/TLS client connections open, by transport', attributes: ['transport'] },
  streamAccepted: { name: 'turnpike.stream.connections.accepted', kind: 'observable-counter', unit: '{connection}', description: 'TURN-over-TCP/TLS client connections accepted, by transport', attributes: ['transport'] },
  streamClosed: { name: 'turnpike.stream.connections.closed', kind: 'observable-counter', unit: '{connection}', description: 'TURN-over-TCP/TLS client connections refused or closed, by transport and reason (source-limit, handshake-timeout, garbage, oversize, tls-error, peer-closed, ...)', attributes: ['transport', 'reason'] },
  streamWriteDropped: { name: 'turnpike.stream.write_dropped', kind: 'observable-counter', unit: '{message}', description: 'Messages not written to a TCP/TLS client that does not read (its write buffer full), by transport', attributes: ['transport'] },
  relayDropped: { name: 'turnpike.relay.dropped', kind: 'observable-counter', unit: '{datagram}', description: 'Datagrams the relay dropped, by reason', attributes: ['reason'] },
  relayRefused: { name: 'turnpike.relay.refused', kind: 'observable-counter', unit: '{request}', description: 'Requests the relay refused because a configured limit was reached, by limit', attributes: ['reason'] },
  mapEntries: { name: 'turnpike.map.entries', kind: 'observable-gauge', unit: '{entry}', description: 'Entries in a kernel map', attributes: ['map'] },
  mapCapacity: { name: 'turnpike.map.capacity', kind: 'observable-gauge', unit: '{entry}', description: 'Capacity (max_entries) of a kernel map', attributes: ['map'] },
  mapRefused: { name: 'turnpike.map.refused_writes', kind: 'observable-counter', unit: '{write}', description: 'Binding writes a full kernel map refused (those channels are relayed in userspace)', attributes: ['map'] },
  socketDropped: { name: 'turnpike.socket.dropped', kind: 'observable-counter', unit: '{datagram}', description: 'Datagrams the kernel dropped at the sidecar\'s UDP sockets instead of queueing them (receive buffer full: offered faster than read; SO_MEMINFO drops, read about once a second), by socket (listen, allocation)', attributes: ['socket'] },
  linkQueue: { name: 'turnpike.link.queue_depth', kind: 'observable-gauge', unit: '{frame}', description: 'Frames queued for the relay link', attributes: [] },
  linkDropped: { name: 'turnpike.link.dropped_frames', kind: 'observable-counter', unit: '{frame}', description: 'Frames dropped because the relay link queue was full', attributes: [] },
  flagState: { name: 'turnpike.flag.state', kind: 'observable-gauge', unit: '1', description: 'Feature flag state (1 on, 0 off)', attributes: ['flag'] },
  streamDropped: { name: 'turnpike.log_stream.dropped', kind: 'counter', unit: '{line}', description: 'Log lines not streamed to Sentry because the streaming bound was reached', attributes: [] },
  logRateLimited: { name: 'turnpike.log.rate_limited', kind: 'observable-counter', unit: '{line}', description: 'Session log lines a client triggered beyond its per-source budget (not logged), by process', attributes: ['process'] },
  // The OpenTelemetry semantic conventions' V8 GC metric (shared/gc.ts: its buckets and why).
  gcDuration: { name: 'v8js.gc.duration', kind: 'histogram', unit: 's', description: 'Garbage collection pauses of the sidecar and relay processes (the relay\'s reported over the link), by process and v8js.gc.type (major, minor, incremental, weakcb)', attributes: ['v8js.gc.type', 'process'], buckets: GC_BUCKETS },
  securityRefusals: { name: 'turnpike.security.refusals', kind: 'counter', unit: '{refusal}', description: 'Requests refused for security (link peer, relay limits, admin token and host), by rule', attributes: ['rule'] },
} as const satisfies Record<string, InstrumentSpec>;

type Specs = typeof INSTRUMENTS;
export type InstrumentKey = keyof Specs;
/** The observed (read at collection) instruments. */
export type ObservableKey = { [K in InstrumentKey]: Specs[K]['kind'] extends 'counter' | 'histogram' ? never : K }[InstrumentKey];
/** The attributes `k` is declared with, each optional. */
export type AttributesOf<K extends InstrumentKey> = { [A in Specs[K]['attributes'][number]]?: string };

export type Instruments = {
  readonly [K in InstrumentKey]: Specs[K]['kind'] extends 'counter' ? Counter<AttributesOf<K>> : Specs[K]['kind'] extends 'histogram' ? Histogram<AttributesOf<K>> : Observable<AttributesOf<K>>;
};

/** Records one observation of `k` during a batch collection. */
export type Observe = <K extends ObservableKey>(k: K, value: number, attributes?: NoInfer<AttributesOf<K>>) => void;

/** Creates every instrument of INSTRUMENTS on `meter`; all but histograms record integers. */
export function createInstruments(meter: Meter): Instruments {
  const out: Partial<Record<InstrumentKey, Counter | Histogram | Observable>> = {};
  for (const [key, spec] of Object.entries(INSTRUMENTS) as [InstrumentKey, InstrumentSpec][]) {
    const options = { description: spec.description, unit: spec.unit, valueType: ValueType.INT };
    switch (spec.kind) {
      case 'counter':
        out[key] = meter.createCounter(spec.name, options);
        break;
      case 'histogram':
        out[key] = meter.createHistogram(spec.name, { ...options, valueType: ValueType.DOUBLE, advice: { explicitBucketBoundaries: [...(spec.buckets ?? [])] } });
        break;
      case 'observable-counter':
        out[key] = meter.createObservableCounter(spec.name, options);
        break;
      case 'observable-gauge':
        out[key] = meter.createObservableGauge(spec.name, options);
        break;
    }
  }
  return out as Instruments;
}

/**
 * Registers one callback that observes every observable instrument at each
 * collection (one pass over the snapshots serves them all).
 */
export function observeAll(meter: Meter, instruments: Instruments, callback: (observe: Observe) => void): void {
  const keys = (Object.keys(INSTRUMENTS) as InstrumentKey[]).filter((k): k is ObservableKey => INSTRUMENTS[k].kind.startsWith('observable'));
  meter.addBatchObservableCallback(
    (result: BatchObservableResult) => callback((k, value, attributes) => result.observe(instruments[k] as Observable, value, attributes)),
    keys.map((k) => instruments[k] as Observable),
  );
}
