// The sidecar's side of the relay link: wires the UDP sockets and the channel
// map to the one connected relay.
// - datagrams from the sockets -> PACKET_IN; PACKET_OUT -> sockets.send
// - OPEN_PORT/CLOSE_PORT -> sockets (answer PORT_OPENED with the errno text)
// - CHANNEL_* -> the channel map, applied strictly in arrival order, then
//   CHANNEL_ACK (the relay holds the ChannelBind answer until then)
// - SNAPSHOT_* -> reconcile sockets and map to the relay's state, then
//   SNAPSHOT_ACK; changes that arrive while a snapshot streams are folded into it
// - STATE -> the relay's state document, kept (latest complete one, unread)
//   and handed to the next relay right after its HELLO
// - relay gone -> for graceMs nothing changes: ports stay open (datagrams for
//   the relay are dropped and counted, never buffered), bindings stay in the
//   kernel, which keeps relaying, and the document is kept for the relay's
//   return. A relay that comes back restores the document and re-announces;
//   the reconcile leaves what it still holds as it is. After graceMs without
//   one (or at once, graceMs 0): close every allocation port, clear the map,
//   forget the document, so the kernel never relays for a binding nobody has
// - LOG/COUNTERS -> 'log'/'counters' events for the telemetry agent; a log
//   line is marked as the relay's and cannot pass for one of the sidecar's
// Every frame is first checked against what the relay may ask (relay-guard.ts);
// a violation closes the link and is reported as a security event.
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import type { LinkConnection } from '../../link/connection.ts';
import type { LinkServer } from '../../link/server.ts';
import type { Frame, PortFailure } from '../../link/protocol.ts';
import type { RelayCounters } from '../../link/counters.ts';
import { portKey, type Family, type LocalEndpoint, type TransportAddress } from '../../shared/endpoint.ts';
import type { ChannelBinding } from '../../shared/binding.ts';
import type { UdpSockets } from '../sockets.ts';
import type { SecurityEvents, SecurityRefusal } from '../security.ts';
import { RelayGuard, type RelayLimits } from './relay-guard.ts';
import { relayLogLine } from '../relay-line.ts';
import { StateAssembler, sendStateChunks } from '../../link/state-chunks.ts';

/** Largest state document the sidecar keeps for the relay (about 2 KiB per allocation). */
const MAX_STATE_BYTES = 256 << 20;

/** The kernel channel map as the bridge needs it; the eBPF map writer implements it (userspace mode: omit it). */
export interface ChannelMap {
  /** Insert or update both directions of a binding. */
  install(b: ChannelBinding): void | Promise<void>;
  remove(b: ChannelBinding): void | Promise<void>;
  /** Make the map hold exactly these bindings. */
  replaceAll(bs: readonly ChannelBinding[]): void | Promise<void>;
  clear(): void | Promise<void>;
}

export interface RelayBridgeOptions {
  server: LinkServer;
  sockets: UdpSockets;
  channels?: ChannelMap;
  /** What the relay may ask for (ports, peers, control rate). */
  limits: RelayLimits;
  /** Where violations are reported; without it they are logged on `logger` only. */
  security?: SecurityEvents;
  logger: Logger;
  /** How long ports, bindings and the state document wait for a relay that left (0: cleared at once). */
  graceMs?: number;
}

export interface RelayBridgeStats {
  relayConnected: boolean;
  packetsToRelay: number;
  packetsFromRelay: number;
  droppedNoRelay: number;
  droppedBackpressure: number;
  portsOpened: number;
  portOpenFailures: number;
  mapWrites: number;
  mapWriteFailures: number;
  resyncs: number;
  disconnectCleanups: number;
  /** Datagrams from an allocation port the relay does not hold (yet), dropped. */
  droppedNotHeld: number;
  /** Links closed because the relay asked for something it may not. */
  violations: number;
  /** Relays that left and came back within the grace time (nothing was cleared). */
  graceReturns: number;
  /** Bytes of the state document held for the relay (0: none). */
  heldStateBytes: number;
}

type Events = {
  log: [level: number, module: string, json: string];
  counters: [counters: RelayCounters];
  'relay-open': [];
  'relay-close': [reason: string];
  /** The grace time after the relay left ran out: ports closed, map cleared. */
  'grace-expired': [];
  resynced: [generation: number, ports: number, channels: number, failed: number];
};

const bindingKey = (b: ChannelBinding) => `${b.client.address}|${b.client.port}|${b.channel}`;

interface Snapshot {
  generation: number;
  ports: Set<number>;
  channels: Map<string, ChannelBinding>;
}

export class RelayBridge extends EventEmitter<Events> {
  private conn: LinkConnection | null = null;
  private snap: Snapshot | null = null;
  /** Map operations run one after another, in frame order. */
  private mapChain: Promise<unknown> = Promise.resolve();
  private readonly log: Logger;
  private readonly s = {
    packetsToRelay: 0, packetsFromRelay: 0, droppedNoRelay: 0, droppedBackpressure: 0, portsOpened: 0,
    portOpenFailures: 0, mapWrites: 0, mapWriteFailures: 0, resyncs: 0, disconnectCleanups: 0, droppedNotHeld: 0, violations: 0,
    graceReturns: 0,
  };
  private guard: RelayGuard | null = null;
  /** The relay's latest complete state document, for its next process. */
  private heldState: Buffer | undefined;
  private readonly incomingState = new StateAssembler(MAX_STATE_BYTES);
  private stateId = 0;
  /** Running while a relay that left may come back to what it had. */
  private graceTimer: NodeJS.Timeout | undefined;

  constructor(private readonly opts: RelayBridgeOptions) {
    super();
    this.log = opts.logger;
    opts.server.on('open', (conn) => {
      this.conn = conn;
      const listen = new Set(opts.sockets.boundAddresses().map((a) => portKey(a.family, a.port)));
      this.guard = new RelayGuard(opts.limits, listen);
      conn.on('frame', (f) => this.onFrame(conn, f));
      this.returned();
      // Right after HELLO: the relay restores this before it announces anything.
      this.stateId = (this.stateId + 1) >>> 0;
      void sendStateChunks(conn, this.stateId, this.heldState ?? new Uint8Array(0));
      this.emit('relay-open');
    });
    opts.server.on('close', (conn, info) => {
      if (this.conn !== conn) return;
      this.conn = null;
      this.guard = null;
      this.snap = null;
      this.incomingState.reset();
      this.left(info.reason);
    });
  }

  /** Stop waiting for the relay (the sidecar stops); what it held is then cleared by the caller's order. */
  stopGrace(): void {
    clearTimeout(this.graceTimer);
    this.graceTimer = undefined;
  }

  /** Pass to UdpSockets as `onPacket`; false when the datagram was dropped (no relay, or the link is backpressured). */
  readonly packetIn = (local: LocalEndpoint, remote: TransportAddress, data: Uint8Array): boolean => {
    const conn = this.conn;
    if (!conn) {
      this.s.droppedNoRelay++;
      return false;
    }
    if (conn.send({ kind: 'packet-in', local, remote, data })) {
      this.s.packetsToRelay++;
      return true;
    }
    this.s.droppedBackpressure++;
    return false;
  };

  /** Resolves when every queued map operation has finished (tests, shutdown). */
  settled(): Promise<void> {
    return this.mapChain.then(() => undefined);
  }

  stats(): RelayBridgeStats {
    return { ...this.s, relayConnected: this.conn !== null, heldStateBytes: this.heldState?.length ?? 0 };
  }

  private onFrame(conn: LinkConnection, f: Frame): void {
    const { sockets } = this.opts;
    const verdict = this.guard?.check(f) ?? null;
    if (verdict === 'drop') {
      this.s.droppedNotHeld++;
      return;
    }
    if (verdict) return this.violation(conn, verdict);
    switch (f.kind) {
      case 'packet-out':
        this.s.packetsFromRelay++;
        sockets.send(f.from, f.to, f.data);
        return;
      case 'open-port':
        void sockets.openPort(f.family, f.port).then((r) => {
          if (this.conn !== conn) {
            // The relay left while the bind was in flight: nobody owns this port.
            sockets.closePort(f.family, f.port);
            return;
          }
          if (r.ok) {
            this.s.portsOpened++;
            this.snap?.ports.add(portKey(f.family, f.port));
          } else this.s.portOpenFailures++;
          conn.send({ kind: 'port-opened', token: f.token, family: f.family, port: f.port, ok: r.ok, error: r.error });
        });
        return;
      case 'close-port':
        sockets.closePort(f.family, f.port);
        this.snap?.ports.delete(portKey(f.family, f.port));
        return;
      case 'channel-bound':
      case 'channel-refreshed':
      case 'channel-unbound': {
        const b = f.binding;
        if (this.snap) {
          if (f.kind === 'channel-unbound') this.snap.channels.delete(bindingKey(b));
          else this.snap.channels.set(bindingKey(b), b);
        }
        this.mapOp(f.kind === 'channel-unbound' ? (m) => m.remove(b) : (m) => m.install(b), (ok, error) =>
          conn.send({ kind: 'channel-ack', seq: f.seq, ok, error }),
        );
        return;
      }
      case 'snapshot-begin':
        this.snap = { generation: f.generation, ports: new Set(), channels: new Map() };
        return;
      case 'snapshot-port':
        this.snap?.ports.add(portKey(f.family, f.port));
        return;
      case 'snapshot-channel':
        this.snap?.channels.set(bindingKey(f.binding), f.binding);
        return;
      case 'snapshot-end': {
        const snap = this.snap;
        this.snap = null;
        if (!snap || snap.generation !== f.generation) {
          this.log.warn({ generation: f.generation }, 'snapshot end without its begin; ignored');
          return;
        }
        void this.reconcile(conn, snap);
        return;
      }
      case 'log':
        // Not a JSON object: the telemetry agent reports it as unparseable, never as a line.
        this.emit('log', f.level, f.module, relayLogLine(f.json) ?? f.json);
        return;
      case 'counters':
        this.emit('counters', f.counters);
        return;
      case 'state': {
        const r = this.incomingState.add(f.id, f.final, f.data);
        if (!r.done) return;
        if ('tooLarge' in r) {
          this.heldState = undefined;
          this.log.warn({ bytes: r.tooLarge, max: MAX_STATE_BYTES }, 'relay state document too large to hold; a restarted relay will start empty');
        } else this.heldState = r.doc;
        return;
      }
      default:
        this.log.debug({ kind: f.kind }, 'unexpected frame from the relay ignored');
    }
  }

  /** The relay asked for something it may not: nothing of it is done, the link closes. */
  private violation(conn: LinkConnection, r: SecurityRefusal): void {
    this.s.violations++;
    const fields = { peerPid: conn.peer?.pid };
    if (this.opts.security) this.opts.security.refuse(r, fields);
    else this.log.error({ ...fields, event: 'security', rule: r.rule, detail: r.detail }, `security: ${r.detail}`);
    conn.close(`security: ${r.detail}`);
  }

  private mapOp(op: (m: ChannelMap) => void | Promise<void>, done: (ok: boolean, error: string) => void): void {
    const map = this.opts.channels;
    this.mapChain = this.mapChain.then(async () => {
      if (!map) return done(true, '');
      try {
        await op(map);
        this.s.mapWrites++;
        done(true, '');
      } catch (e) {
        this.s.mapWriteFailures++;
        this.log.warn({ err: (e as Error).message }, 'channel map write failed; the relay serves this channel in userspace');
        done(false, (e as Error).message);
      }
    });
  }

  private async reconcile(conn: LinkConnection, snap: Snapshot): Promise<void> {
    const { sockets } = this.opts;
    // Queue the map replacement now, so channel frames that follow the
    // snapshot are applied after it, not wiped by it.
    const bindings = [...snap.channels.values()];
    const mapDone = new Promise<void>((resolve) => this.mapOp((m) => m.replaceAll(bindings), () => resolve()));
    for (const p of sockets.allocationPorts()) {
      if (!snap.ports.has(portKey(p.family, p.port))) sockets.closePort(p.family, p.port);
    }
    const failed: PortFailure[] = [];
    await Promise.all(
      [...snap.ports].map(async (k) => {
        const family = (k >> 16) as Family;
        const port = k & 0xffff;
        const r = await sockets.openPort(family, port);
        if (!r.ok) failed.push({ family, port, error: r.error });
      }),
    );
    await mapDone;
    if (this.conn !== conn) return;
    this.s.resyncs++;
    conn.send({ kind: 'snapshot-ack', generation: snap.generation, failedTotal: failed.length, failed });
    this.log.info({ generation: snap.generation, ports: snap.ports.size, channels: bindings.length, failed: failed.length }, 'relay state resynced');
    this.emit('resynced', snap.generation, snap.ports.size, bindings.length, failed.length);
  }

  /** The relay left: wait graceMs for it with everything as it was, or clear now. */
  private left(reason: string): void {
    const graceMs = this.opts.graceMs ?? 0;
    this.emit('relay-close', reason);
    if (graceMs <= 0) return this.cleanup(reason, 'relay disconnected');
    this.stopGrace();
    this.graceTimer = setTimeout(() => {
      this.graceTimer = undefined;
      this.cleanup(reason, `no relay back within the grace time of ${graceMs} ms`);
      this.emit('grace-expired');
    }, graceMs);
    this.graceTimer.unref();
    this.log.warn(
      { reason, graceMs, ports: this.opts.sockets.allocationPorts().length, heldStateBytes: this.heldState?.length ?? 0 },
      'relay disconnected: ports and bindings kept for its return; datagrams for it are dropped meanwhile',
    );
  }

  private returned(): void {
    if (this.graceTimer === undefined) return;
    this.stopGrace();
    this.s.graceReturns++;
    this.log.info({ heldStateBytes: this.heldState?.length ?? 0 }, 'relay back within the grace time');
  }

  private cleanup(reason: string, why: string): void {
    const closed = this.opts.sockets.closeAllocationPorts();
    this.s.disconnectCleanups++;
    this.heldState = undefined;
    this.mapOp((m) => m.clear(), () => {});
    this.log.warn({ reason, closedPorts: closed }, `${why}: allocation ports closed, channel map cleared`);
  }
}
