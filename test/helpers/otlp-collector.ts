// An in-test OTLP/gRPC metrics collector: a real @grpc/grpc-js server that
// accepts MetricsService/Export and decodes each request with protobufjs from
// the vendored proto subset (no npm package ships the OTLP .proto files).
import * as grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import { fileURLToPath } from 'node:url';

const PROTO = fileURLToPath(new URL('../fixtures/otlp/metrics_service.proto', import.meta.url));
const root = protobuf.loadSync(PROTO);
const Req = root.lookupType('otlp.ExportMetricsServiceRequest');
const Res = root.lookupType('otlp.ExportMetricsServiceResponse');

export interface DataPoint {
  attributes: Record<string, string | number | boolean>;
  value: number;
}

export interface DecodedMetric {
  name: string;
  unit: string;
  kind: 'sum' | 'gauge' | 'histogram';
  monotonic: boolean;
  points: DataPoint[];
}

export interface DecodedExport {
  resource: Record<string, string | number | boolean>;
  metrics: DecodedMetric[];
}

type Obj = Record<string, any>;

function attrs(list: Obj[] | undefined): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {};
  for (const kv of list ?? []) {
    const v = kv.value ?? {};
    out[kv.key] = v.stringValue ?? v.boolValue ?? (v.intValue !== undefined ? Number(v.intValue) : v.doubleValue);
  }
  return out;
}

function decode(buf: Buffer): DecodedExport[] {
  const req = Req.toObject(Req.decode(buf), { longs: String, oneofs: true, defaults: false }) as Obj;
  return (req.resourceMetrics ?? []).map((rm: Obj) => ({
    resource: attrs(rm.resource?.attributes),
    metrics: (rm.scopeMetrics ?? []).flatMap((sm: Obj) =>
      (sm.metrics ?? []).map((m: Obj): DecodedMetric => {
        const kind = m.sum ? 'sum' : m.gauge ? 'gauge' : 'histogram';
        const body = m.sum ?? m.gauge ?? m.histogram ?? {};
        return {
          name: m.name,
          unit: m.unit ?? '',
          kind,
          monotonic: Boolean(m.sum?.isMonotonic),
          points: (body.dataPoints ?? []).map((p: Obj) => ({
            attributes: attrs(p.attributes),
            value: kind === 'histogram' ? Number(p.sum ?? 0) : p.asInt !== undefined ? Number(p.asInt) : Number(p.asDouble ?? 0),
          })),
        };
      }),
    ),
  }));
}

export interface OtlpCollector {
  readonly url: string;
  readonly exports: DecodedExport[];
  /** Resolves with the first export for which `pred` holds (checks past exports too). */
  waitFor(pred: (e: DecodedExport) => boolean): Promise<DecodedExport>;
  close(): Promise<void>;
}

/**
 * `address` defaults to 127.0.0.1 on an ephemeral port; `unix:///path` listens
 * on a Unix socket instead (reachable from another network namespace; the
 * exporter then needs OTEL_EXPORTER_OTLP_INSECURE=true).
 */
export async function startOtlpCollector(opts: { address?: string } = {}): Promise<OtlpCollector> {
  const exports: DecodedExport[] = [];
  const waiters: { pred: (e: DecodedExport) => boolean; resolve: (e: DecodedExport) => void }[] = [];
  const server = new grpc.Server();
  const service: grpc.ServiceDefinition = {
    Export: {
      path: '/opentelemetry.proto.collector.metrics.v1.MetricsService/Export',
      requestStream: false,
      responseStream: false,
      requestSerialize: (b: Buffer) => b,
      requestDeserialize: (b: Buffer) => b,
      responseSerialize: (m: Obj) => Buffer.from(Res.encode(Res.create(m)).finish()),
      responseDeserialize: (b: Buffer) => b,
    },
  };
  server.addService(service, {
    Export: (call: grpc.ServerUnaryCall<Buffer, Obj>, cb: grpc.sendUnaryData<Obj>) => {
      for (const e of decode(call.request)) {
        exports.push(e);
        for (let i = waiters.length - 1; i >= 0; i--) {
          const w = waiters[i]!;
          if (w.pred(e)) {
            waiters.splice(i, 1);
            w.resolve(e);
          }
        }
      }
      cb(null, {});
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(opts.address ?? '127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))),
  );
  return {
    url: opts.address?.startsWith('unix:') ? opts.address : `http://127.0.0.1:${port}`,
    exports,
    waitFor(pred) {
      const hit = exports.find(pred);
      if (hit) return Promise.resolve(hit);
      return new Promise((resolve) => waiters.push({ pred, resolve }));
    },
    close: () => new Promise((resolve) => server.tryShutdown(() => resolve())),
  };
}

/** The value of one series in an export, or undefined when absent. */
export function pointValue(e: DecodedExport, name: string, match: Record<string, string> = {}): number | undefined {
  const m = e.metrics.find((x) => x.name === name);
  const p = m?.points.find((pt) => Object.entries(match).every(([k, v]) => pt.attributes[k] === v));
  return p?.value;
}
