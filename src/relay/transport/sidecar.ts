// Sidecar transport: the relay's datagrams travel over the local link to the
// privileged sidecar, which owns the UDP sockets and the kernel maps.
//
// - Connects with LinkClient (capped, jittered backoff); on every (re)connect
//   it streams the server's snapshot() (allocation ports + active channel
//   bindings) so a restarted sidecar rebuilds its sockets and maps.
// - packet-in frames feed driver.datagram(); outputs become frames.
// - open-port goes over the link; port-opened calls driver.portOpened(). With
//   no link, opens fail at once (the server then answers the Allocate itself).
// - Ports the sidecar could not reopen for a snapshot (SNAPSHOT_ACK `failed`)
//   are reported to the server (driver.portLost), which deletes their
//   allocations: they could never relay again, and the client learns at its
//   next request (437) instead of at expiry.
// - Install before answer: after a channel-bound event, datagrams to that
//   client are held until the sidecar acks the map write (CHANNEL_ACK), so the
//   ChannelBind success never reaches the client before the kernel can relay.
//   The hold is per client; other traffic flows. If no ack arrives within
//   ackTimeoutMs (or the ack reports a failed write) the held datagrams are
//   sent anyway with a warning: FAIL OPEN. Reason: the fast path is an
//   optional accelerator: a binding missing from the kernel map only means
//   the client's ChannelData is passed up and relayed here in userspace, while
//   failing the ChannelBind would break the client for a sidecar hiccup.
// - State kept across a restart of this process: the server's state document
//   (server/state-document.ts) goes to the sidecar in STATE frames on every
//   connect and, debounced, whenever the tables changed; the sidecar keeps the
//   latest and hands it to the next relay after its HELLO, which restores it
//   before it answers anything. The snapshot waits for that (serverReady), so
//   a restarted relay never announces an empty state over the one the sidecar
//   still relays.
import { portKey } from '../../shared/endpoint.ts';
import { EventEmitter, once } from 'node:events';
import type { Logger } from 'pino';
import { LinkClient, type BackoffOptions } from '../../link/client.ts';
import type { Hello, LinkConnection, LinkStats } from '../../link/connection.ts';
import type { Frame } from '../../link/protocol.ts';
import { StateAssembler, sendStateChunks } from '../../link/state-chunks.ts';
import type { RelayCounters } from '../../link/counters.ts';
import type { DataPlaneEvent, Family, LocalEndpoint, TransportAddress } from '../server/types.ts';
import { Driver, type DatapathPort } from './driver.ts';
import type { StartTransport } from './runner.ts';
import { linkSocketPath } from '../../config/paths.ts';
import { startRelayTelemetry } from '../telemetry/index.ts';
import type { TurnServer } from '../server/server.ts';
import { StreamServers, routeStreams, streamOptions } from './streams.ts';
import { inheritedStreamSockets } from './stream-sockets.ts';
import { encodeStateDocument, parseStateDocument } from '../server/state-document.ts';
import { monotonicClock } from './clock.ts';

/** The driver surface this transport feeds (src/relay/transport/driver.ts). */
export interface DriverInput {
  datagram(data: Uint8Array, local: LocalEndpoint, remote: TransportAddress): void;
  portOpened(token: number, ok: boolean): void;
  /** A port the sidecar could not reopen after a resync: the server deletes its allocation. */
  portLost(family: Family, port: number): void;
}

export interface SidecarTransportOptions {
  /** The link's Unix socket path (TURNPIKE_SOCKET). */
  path: string;
  software: string;
  logger: Logger;
  /** The server's current data-plane state (TurnServer.snapshot). */
  snapshot: () => readonly DataPlaneEvent[];
  ackTimeoutMs?: number;
  /** Datagrams held per client while a bind ack is pending; beyond, dropped. */
  maxHeldPerClient?: number;
  /** Snapshot items sent per event-loop turn. */
  snapshotBatch?: number;
  backoff?: BackoffOptions;
  keepaliveIntervalMs?: number;
  keepaliveTimeoutMs?: number;
  maxQueueBytes?: number;
  controlReserveBytes?: number;
  /** Announce another protocol version (tests only). */
  version?: number;
  /** The server's state document for the sidecar to hold; without it none is sent. */
  state?: StateSource;
  /** Snapshots wait for serverReady() (the server is built and restored); default: they go at once. */
  gated?: boolean;
}

export interface StateSource {
  /** Moves whenever the state changed (TurnServer.stateChanges). */
  changes(): number;
  /** The document's bytes now. */
  encode(): Uint8Array;
  /** How often a change no answer waits for is saved (default 250 ms); an answer that waits for one gets its document at once. */
  intervalMs?: number;
}

export interface SidecarTransportStats {
  connected: boolean;
  connects: number;
  packetsIn: number;
  packetsOut: number;
  /** Datagrams the server sent while no sidecar was connected. */
  droppedDisconnected: number;
  /** Datagrams the link writer dropped under backpressure. */
  droppedBackpressure: number;
  droppedHeldOverflow: number;
  heldForAck: number;
  ackTimeouts: number;
  ackFailures: number;
  openPortsFailedNoLink: number;
  snapshotsSent: number;
  snapshotPortFailures: number;
  logsDropped: number;
  link: LinkStats | null;
}

type Events = {
  /** The link is open; `peer` is the sidecar's HELLO (with the relayed addresses). */
  open: [peer: Hello];
  close: [reason: string];
  /** The sidecar applied a snapshot; `failed` lists ports it could not reopen. */
  resynced: [generation: number, failed: { family: Family; port: number; error: string }[]];
  /** The sidecar's log filters, local and stream (on connect and on every change); src/relay/telemetry applies them. */
  'log-filter': [filter: string, stream: string | undefined];
  /** The sidecar drains: refuse new Allocates (300 to `alternate`, else 508). */
  drain: [alternate: TransportAddress | undefined];
  /** The state document the sidecar holds for us (undefined: none), sent after its HELLO. */
  'held-state': [doc: Buffer | undefined];
};

interface Hold {
  seqs: Set<number>;
  queue: { from: LocalEndpoint; to: TransportAddress; data: Uint8Array }[];
}

const clientKey = (a: TransportAddress) => `${a.address}|${a.port}`;

export class SidecarTransport extends EventEmitter<Events> implements DatapathPort {
  private driver: DriverInput | undefined;
  private readonly client: LinkClient;
  private readonly log: Logger;
  private conn: LinkConnection | null = null;
  private readonly pendingOpens = new Map<number, { family: Family; port: number }>();
  private readonly holds = new Map<string, Hold>();
  private readonly ackWaits = new Map<number, { key: string; timer: NodeJS.Timeout }>();
  private seq = 0;
  private generation = 0;
  /**
   * Ports opened (port-opened ok) while the current snapshot awaits its ack:
   * a newer allocation may own a number the snapshot's reopen failed on, and
   * must not be deleted for it. Undefined when no ack is awaited.
   */
  private openedDuringResync: Set<number> | undefined;
  private ready: Promise<void>;
  private isReady: boolean;
  private markReady: () => void = () => {};
  /** Chunks of the document the sidecar is sending us. */
  private readonly incoming = new StateAssembler();
  private stateTimer: NodeJS.Timeout | undefined;
  private stateSentAt = -1;
  private stateId = 0;
  private sendingState = false;
  /** A document is due at the end of this turn. */
  private stateSoon = false;
  /**
   * Answers to requests that changed the state (Allocate, Refresh,
   * CreatePermission, ChannelBind successes), held until a document holding
   * their change has gone to the sidecar: a relay killed between the answer
   * and the next document would otherwise lose what the client was told it has.
   */
  private awaitingState: { from: LocalEndpoint; to: TransportAddress; data: Uint8Array }[] = [];
  /** Clients with an answer in awaitingState: whatever else goes to them waits behind it (a retransmission's 437 must not overtake the held success). */
  private readonly awaitingClients = new Set<string>();
  /** The sidecar's DRAIN, kept: it may arrive before the server is built. */
  drainRequest: { alternate: TransportAddress | undefined } | undefined;
  private readonly s = {
    connects: 0, packetsIn: 0, packetsOut: 0, droppedDisconnected: 0, droppedBackpressure: 0, droppedHeldOverflow: 0,
    heldForAck: 0, ackTimeouts: 0, ackFailures: 0, openPortsFailedNoLink: 0, snapshotsSent: 0, snapshotPortFailures: 0, logsDropped: 0,
  };

  constructor(private readonly opts: SidecarTransportOptions) {
    super();
    this.log = opts.logger;
    this.client = new LinkClient({
      path: opts.path,
      software: opts.software,
      logger: opts.logger,
      backoff: opts.backoff,
      keepaliveIntervalMs: opts.keepaliveIntervalMs,
      keepaliveTimeoutMs: opts.keepaliveTimeoutMs,
      maxQueueBytes: opts.maxQueueBytes,
      controlReserveBytes: opts.controlReserveBytes,
      version: opts.version,
    });
    this.client.on('open', (conn, peer) => this.onOpen(conn, peer));
    this.client.on('close', (info) => {
      if (info.opened) this.onClosed(info.reason);
    });
    this.isReady = !opts.gated;
    this.ready = opts.gated ? new Promise((resolve) => (this.markReady = resolve)) : Promise.resolve();
    if (opts.state) {
      this.stateTimer = setInterval(() => this.saveState(false), opts.state.intervalMs ?? 250);
      this.stateTimer.unref();
    }
  }

  /** The server is built (and restored): snapshots may go. */
  serverReady(): void {
    this.isReady = true;
    this.markReady();
  }

  attach(driver: DriverInput): void {
    this.driver = driver;
  }

  start(): void {
    this.client.start();
  }

  /**
   * The state as it is now, to the sidecar before a graceful stop (SIGTERM,
   * an upgrade): the debounce would otherwise lose the last changes.
   */
  async saveFinal(): Promise<void> {
    const src = this.opts.state;
    const conn = this.conn;
    if (!src || !conn || !this.isReady) return;
    // One document at a time: chunks of two would interleave under backpressure.
    while (this.sendingState && conn.state === 'open') await new Promise((r) => setImmediate(r));
    const id = (this.stateId = (this.stateId + 1) >>> 0);
    const waiting = this.awaitingState.splice(0);
    this.stateSentAt = src.changes();
    await sendStateChunks(conn, id, src.encode());
    this.sendHeld(waiting);
    conn.flush();
    await conn.waitWritable();
  }

  stop(): void {
    clearInterval(this.stateTimer);
    this.client.stop();
    if (this.conn) this.onClosed('stopped');
  }

  get connected(): boolean {
    return this.conn?.state === 'open';
  }

  // ---- DatapathPort --------------------------------------------------------

  send(from: LocalEndpoint, to: TransportAddress, data: Uint8Array): void {
    // Holds are rare (a bind ack in flight): skip building the key per datagram.
    const hold = this.holds.size === 0 ? undefined : this.holds.get(clientKey(to));
    if (hold) {
      if (hold.queue.length >= (this.opts.maxHeldPerClient ?? 64)) this.s.droppedHeldOverflow++;
      else {
        hold.queue.push({ from, to, data });
        this.s.heldForAck++;
      }
      return;
    }
    this.sendAfterState(from, to, data);
  }

  openPort(token: number, family: Family, port: number): void {
    const conn = this.conn;
    if (!conn || !conn.send({ kind: 'open-port', token, family, port })) {
      this.s.openPortsFailedNoLink++;
      // Answer after the driver's drain loop, not inside it.
      queueMicrotask(() => this.driver?.portOpened(token, false));
      return;
    }
    this.pendingOpens.set(token, { family, port });
  }

  closePort(family: Family, port: number): void {
    this.conn?.send({ kind: 'close-port', family, port });
  }

  onEvent(ev: DataPlaneEvent): void {
    const conn = this.conn;
    if (!conn) return; // the snapshot on reconnect carries the state
    switch (ev.type) {
      case 'channel-bound': {
        const seq = this.nextSeq();
        if (!conn.send({ kind: 'channel-bound', seq, binding: ev.binding })) return;
        this.holdFor(seq, clientKey(ev.binding.client));
        break;
      }
      case 'channel-refreshed':
      case 'channel-unbound':
        conn.send({ kind: ev.type, seq: this.nextSeq(), binding: ev.binding });
        break;
      default:
        // Port open/close travel as open-port/close-port outputs.
        break;
    }
  }

  // ---- telemetry -------------------------------------------------------------

  /** Forwards one log record (pino level number, module, JSON object text); dropped when the link is down or full. */
  sendLog(level: number, module: string, json: string): boolean {
    const ok = this.conn?.send({ kind: 'log', level, module, json }) ?? false;
    if (!ok) this.s.logsDropped++;
    return ok;
  }

  /** Forwards a counters snapshot (ServerStats and stats()). */
  sendCounters(counters: RelayCounters): boolean {
    return this.conn?.send({ kind: 'counters', counters }) ?? false;
  }

  stats(): SidecarTransportStats {
    return { ...this.s, connected: this.connected, link: this.conn?.stats() ?? null };
  }

  // ---- link -----------------------------------------------------------------

  private onOpen(conn: LinkConnection, peer: Hello): void {
    this.conn = conn;
    this.s.connects++;
    conn.on('frame', (f) => this.onFrame(f));
    this.incoming.reset();
    void this.ready.then(async () => {
      await this.sendSnapshot(conn);
      // A new sidecar holds nothing for us: give it our state now, not at the next change.
      if (this.conn === conn) this.saveState(true);
    });
    this.emit('open', peer);
  }

  private onClosed(reason: string): void {
    this.conn = null;
    this.openedDuringResync = undefined;
    // The sidecar closes our ports and clears the maps when we go; fail what was in flight.
    const tokens = [...this.pendingOpens.keys()];
    this.pendingOpens.clear();
    for (const w of this.ackWaits.values()) clearTimeout(w.timer);
    this.ackWaits.clear();
    for (const h of this.holds.values()) this.s.droppedDisconnected += h.queue.length;
    this.holds.clear();
    this.s.droppedDisconnected += this.awaitingState.length;
    this.awaitingState = [];
    this.awaitingClients.clear();
    if (tokens.length > 0) queueMicrotask(() => tokens.forEach((t) => this.driver?.portOpened(t, false)));
    this.log.warn({ reason, failedOpens: tokens.length }, 'sidecar link down; datagrams are dropped until it returns');
    this.emit('close', reason);
  }

  private onFrame(f: Frame): void {
    switch (f.kind) {
      case 'packet-in':
        this.s.packetsIn++;
        this.driver?.datagram(f.data, f.local, f.remote);
        return;
      case 'port-opened': {
        if (!this.pendingOpens.delete(f.token)) return; // answered already (e.g. link flapped)
        if (!f.ok) this.log.debug({ family: f.family, port: f.port, error: f.error }, 'sidecar could not open allocation port');
        else this.openedDuringResync?.add(portKey(f.family, f.port));
        this.driver?.portOpened(f.token, f.ok);
        return;
      }
      case 'channel-ack': {
        const w = this.ackWaits.get(f.seq);
        if (!w) return;
        if (!f.ok) {
          this.s.ackFailures++;
          this.log.warn({ seq: f.seq, error: f.error }, 'sidecar could not install a channel binding; the channel is relayed in userspace');
        }
        this.release(f.seq);
        return;
      }
      case 'snapshot-ack':
        this.s.snapshotPortFailures += f.failedTotal;
        if (f.failedTotal > 0) this.log.warn({ generation: f.generation, failed: f.failedTotal, sample: f.failed.slice(0, 5) }, 'sidecar could not reopen some allocation ports');
        else this.log.info({ generation: f.generation }, 'sidecar resynced');
        if (f.generation === this.generation) this.dropLostPorts(f.failed, f.failedTotal);
        this.emit('resynced', f.generation, f.failed);
        return;
      case 'log-filter':
        this.emit('log-filter', f.filter, f.stream);
        return;
      case 'drain':
        this.drainRequest = { alternate: f.alternate };
        this.emit('drain', f.alternate);
        return;
      case 'state': {
        const r = this.incoming.add(f.id, f.final, f.data);
        if (r.done && 'doc' in r) this.emit('held-state', r.doc);
        return;
      }
      default:
        this.log.debug({ kind: f.kind }, 'unexpected frame from the sidecar ignored');
    }
  }

  /** Sends the state document when it changed since the last one (or `force`), in chunks, minding backpressure. */
  private saveState(force: boolean): void {
    const src = this.opts.state;
    const conn = this.conn;
    if (!src || !conn || !this.isReady || this.sendingState) return;
    const changes = src.changes();
    if (!force && changes === this.stateSentAt) {
      if (this.awaitingState.length > 0) this.sendHeld([]);
      return;
    }
    this.stateSentAt = changes;
    this.sendingState = true;
    const id = (this.stateId = (this.stateId + 1) >>> 0);
    // Every held answer's change is in this encoding: they follow its last chunk on the link.
    const waiting = this.awaitingState.splice(0);
    void sendStateChunks(conn, id, src.encode()).finally(() => {
      this.sendingState = false;
      this.sendHeld(waiting);
      // Answers that came during this one wait for the next document: it goes now, not at the next tick.
      if (this.awaitingState.length > 0) this.saveState(false);
    });
  }

  private sendHeld(sent: { from: LocalEndpoint; to: TransportAddress; data: Uint8Array }[]): void {
    for (const w of sent) this.sendNow(w.from, w.to, w.data);
    // No newer change to wait for: what queued behind the sent answers goes too.
    if (!this.sendingState && this.opts.state?.changes() === this.stateSentAt) for (const w of this.awaitingState.splice(0)) this.sendNow(w.from, w.to, w.data);
    this.awaitingClients.clear();
    for (const w of this.awaitingState) this.awaitingClients.add(clientKey(w.to));
  }

  /**
   * An answer that changed the state waits for the document holding the
   * change, which goes at once (or right after the one being sent): waiting
   * for the next tick instead capped the control plane at one round of
   * answers per interval (250 allocations/s at 64 requests in flight).
   */
  private sendAfterState(from: LocalEndpoint, to: TransportAddress, data: Uint8Array): void {
    const src = this.opts.state;
    const behind = this.awaitingClients.size > 0 && this.awaitingClients.has(clientKey(to));
    if (!behind && (!src || !this.conn || !this.isReady || !isStateAnswer(data) || src.changes() === this.stateSentAt)) {
      this.sendNow(from, to, data);
      return;
    }
    this.awaitingState.push({ from, to, data });
    this.awaitingClients.add(clientKey(to));
    // At the end of the turn, so the answers to one batch of requests share a document.
    if (src && !this.stateSoon) {
      this.stateSoon = true;
      setImmediate(() => {
        this.stateSoon = false;
        this.saveState(false);
      });
    }
  }

  /** Deletes (via the server) the allocations whose ports the sidecar could not reopen. */
  private dropLostPorts(failed: readonly { family: Family; port: number; error: string }[], failedTotal: number): void {
    const openedSince = this.openedDuringResync;
    this.openedDuringResync = undefined;
    for (const p of failed) {
      if (openedSince?.has(portKey(p.family, p.port))) continue; // reopened since, for a newer allocation
      this.log.warn({ family: p.family, port: p.port, error: p.error }, 'allocation port not reopened after resync; deleting its allocation');
      this.driver?.portLost(p.family, p.port);
    }
    if (failedTotal > failed.length) {
      this.log.warn({ unlisted: failedTotal - failed.length }, 'more ports failed than the snapshot ack lists; their allocations stay until they expire');
    }
  }

  private sendNow(from: LocalEndpoint, to: TransportAddress, data: Uint8Array): void {
    const conn = this.conn;
    if (!conn) {
      this.s.droppedDisconnected++;
      return;
    }
    if (conn.send({ kind: 'packet-out', from, to, data })) this.s.packetsOut++;
    else this.s.droppedBackpressure++;
  }

  private nextSeq(): number {
    this.seq = (this.seq + 1) >>> 0 || 1;
    return this.seq;
  }

  private holdFor(seq: number, key: string): void {
    let h = this.holds.get(key);
    if (!h) this.holds.set(key, (h = { seqs: new Set(), queue: [] }));
    h.seqs.add(seq);
    const timeout = this.opts.ackTimeoutMs ?? 1000;
    const timer = setTimeout(() => {
      this.s.ackTimeouts++;
      this.log.warn({ seq, timeoutMs: timeout }, 'no channel ack from the sidecar in time; answering anyway (fail open)');
      this.release(seq);
    }, timeout);
    timer.unref();
    this.ackWaits.set(seq, { key, timer });
  }

  private release(seq: number): void {
    const w = this.ackWaits.get(seq);
    if (!w) return;
    clearTimeout(w.timer);
    this.ackWaits.delete(seq);
    const h = this.holds.get(w.key);
    if (!h) return;
    h.seqs.delete(seq);
    if (h.seqs.size > 0) return;
    this.holds.delete(w.key);
    for (const q of h.queue) this.sendAfterState(q.from, q.to, q.data);
  }

  /** Streams the snapshot in batches so a large state never overflows the control queue. */
  private async sendSnapshot(conn: LinkConnection): Promise<void> {
    const generation = (this.generation = (this.generation + 1) >>> 0);
    this.openedDuringResync = new Set();
    const items = this.opts.snapshot();
    const batch = this.opts.snapshotBatch ?? 1000;
    let ports = 0;
    let channels = 0;
    conn.send({ kind: 'snapshot-begin', generation });
    for (let i = 0; i < items.length; i++) {
      if (i > 0 && i % batch === 0) {
        await new Promise<void>((r) => setImmediate(r));
        while (conn.state === 'open' && conn.isBackpressured) await conn.waitWritable();
        if (conn.state !== 'open' || this.generation !== generation) return;
      }
      const ev = items[i]!;
      if (ev.type === 'allocation-port-opened') {
        conn.send({ kind: 'snapshot-port', family: ev.family, port: ev.port });
        ports++;
      } else if (ev.type === 'channel-bound' || ev.type === 'channel-refreshed') {
        conn.send({ kind: 'snapshot-channel', binding: ev.binding });
        channels++;
      }
    }
    conn.send({ kind: 'snapshot-end', generation, ports, channels });
    this.s.snapshotsSent++;
    this.log.info({ generation, ports, channels }, 'state re-announced to the sidecar');
  }
}

// ---- runner adapter (added by the integration helper; see runner.ts) --------

/**
 * Runs a TurnServer behind the sidecar link (cmd/relay.ts picks it with
 * --transport sidecar). The server is built once the first HELLO names the
 * relayed addresses; until then no datagram can arrive (they come over the
 * link), and the first snapshot is empty, as a new relay's state is. A later
 * sidecar that names other addresses fails the transport: allocations already
 * handed out carry the old ones, so the relay starts anew.
 */
/** How long a new relay waits after HELLO for the state the sidecar holds (it sends it at once). */
const HELD_STATE_WAIT_MS = 3000;

/** Takes over the state a previous relay process left with the sidecar; a document it cannot use leaves the server empty. */
function restoreHeld(server: TurnServer, held: Buffer, now: number, log: Logger): void {
  const parsed = parseStateDocument(held);
  if (!parsed.ok) {
    log.warn({ reason: parsed.reason, bytes: held.length }, 'the state the sidecar held is unusable; starting empty');
    return;
  }
  try {
    const counts = server.restoreState(parsed.doc, now, Date.now());
    log.info({ ...counts, from: parsed.doc.software, version: parsed.from, savedAgoMs: Date.now() - parsed.doc.savedAt }, 'state restored from the previous relay');
  } catch (e) {
    log.warn({ reason: (e as Error).message }, 'cannot restore the previous relay state; starting empty');
  }
}

/** A STUN success response to Allocate (3), Refresh (4), CreatePermission (8) or ChannelBind (9), from its header (RFC 8489 §5). */
function isStateAnswer(d: Uint8Array): boolean {
  if (d.length < 20 || (d[0]! & 0xc0) !== 0 || d[4] !== 0x21 || d[5] !== 0x12 || d[6] !== 0xa4 || d[7] !== 0x42) return false;
  const type = (d[0]! << 8) | d[1]!;
  if ((type & 0x0110) !== 0x0100) return false;
  const method = (type & 0x000f) | ((type & 0x00e0) >> 1) | ((type & 0x3e00) >> 2);
  return method === 3 || method === 4 || method === 8 || method === 9;
}

export const startSidecarTransport: StartTransport = async ({ config, buildServer, logs, logDestination, streamSockets }) => {
  const log = logs.get('transport');
  const path = linkSocketPath(config);
  let server: TurnServer | undefined;
  const clock = monotonicClock();
  const transport = new SidecarTransport({
    path,
    software: `turnpike-relay/${config.software}`,
    logger: log,
    snapshot: () => server?.snapshot() ?? [],
    gated: true,
    state: { changes: () => server?.stateChanges ?? 0, encode: () => encodeStateDocument(server!.saveState(clock(), Date.now())) },
    // Back within a second of a restarted sidecar: reconnecting to a local socket costs nothing.
    backoff: { initialMs: 50, maxMs: 250 },
  });
  const firstHello = once(transport, 'open');
  const firstState = once(transport, 'held-state');
  transport.start();
  const [hello] = await firstHello;
  const addresses = hello.relayAddresses ?? {};
  const [held] = await Promise.race([firstState, new Promise<[undefined]>((r) => setTimeout(() => r([undefined]), HELD_STATE_WAIT_MS).unref())]);
  server = buildServer(addresses);
  if (held) restoreHeld(server, held, clock(), log);
  transport.serverReady();
  const failed = new Promise<string>((resolve) =>
    transport.on('open', (peer) => {
      const now = peer.relayAddresses ?? {};
      if (now.v4 !== addresses.v4 || now.v6 !== addresses.v6) {
        resolve(`the sidecar now names relayed addresses ${JSON.stringify(now)} instead of ${JSON.stringify(addresses)}`);
      }
    }),
  );
  const drain = (alternate: TransportAddress | undefined) => {
    if (!server!.draining) log.info({ alternate }, 'draining: new allocations refused, existing ones served');
    server!.drain(alternate);
  };
  transport.on('drain', drain);
  if (transport.drainRequest) drain(transport.drainRequest.alternate);

  // TURN over TCP/TLS: the relay accepts and parses on sockets the launcher
  // made; replies go back on the connection, never over the link.
  const sockets = [...inheritedStreamSockets(config.streamFds ?? []), ...(streamSockets ?? [])];
  let noConnection = 0;
  const streams = sockets.length === 0 ? undefined : new StreamServers(
    streamOptions(config),
    { message: (data, local, remote) => driver.datagram(data, local, remote), closed: (local, remote) => driver.connectionClosed(local, remote) },
    log,
  );
  const driver = new Driver(server, streams ? routeStreams(transport, streams, () => noConnection++) : transport, { log, clock });
  transport.attach(driver);
  if (streams) await streams.listen(sockets);
  else if (config.tcp || config.tlsCert !== undefined) log.info('TURN over TCP/TLS not served: no listening sockets were handed to this relay (the launcher makes them; under systemd, the turnpike-relay-tcp/-tls socket units)');
  // Counters (and the sidecar's log filter) travel over the link; the sidecar exports them.
  const telemetry = startRelayTelemetry({ link: transport, server, logs, destination: logDestination, extra: () => ({ transport: transport.stats(), ...(streams ? { streams: streams.stats().streams } : {}) }) });
  driver.kick();
  const fromSidecar = (a: string | undefined) => (a ? `${a} (sidecar)` : 'unavailable');
  return {
    server,
    failed,
    describe: () => ({
      transport: 'sidecar',
      socket: path,
      relayAddresses: { v4: fromSidecar(addresses.v4), v6: fromSidecar(addresses.v6) },
      streams: streams?.bound().map((a) => `${a.transport}:${a.family === 6 ? `[${a.address}]` : a.address}:${a.port}`) ?? [],
    }),
    stats: () => ({ ...transport.stats(), ...streams?.stats(), ...(noConnection > 0 ? { noConnection } : {}) }),
    close: async () => {
      telemetry.close();
      driver.close();
      await transport.saveFinal();
      await streams?.close();
      transport.stop();
    },
  };
};
