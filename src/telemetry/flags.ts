// Feature flags from PostHog, evaluated on an interval.
//
// Rules (ARCHITECTURE.md): a flag is false whenever PostHog is unset,
// failing, slow or does not know it; `TURNPIKE_FLAG_<NAME>=true|false` wins
// over PostHog; a flip takes effect without a restart. With no PostHog key no
// client exists and nothing touches the network.
//
// "Failing" is observed, not guessed: PostHog's HTTP goes through a fetch
// wrapper that records whether the latest flag request (POST /flags or GET
// /flags/definitions) answered with a parseable 2xx/304 within the timeout.
// Otherwise the SDK would keep serving cached local-evaluation definitions
// while PostHog is down.
import type { PostHog } from 'posthog-node';
import { createRequire } from 'node:module';
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import { FLAG_ENV_PREFIX, flagOverrideKey } from '../config/env.ts';
import type { Config } from '../config/schema.ts';

export type FlagSource = 'default' | 'posthog' | 'env';

export interface FlagState {
  readonly on: boolean;
  /** The flag's payload when on (a string for stream-logs), else undefined. */
  readonly payload: unknown;
  readonly source: FlagSource;
}

// posthog-node is loaded only when a key is set: it costs a few hundred ms of
// start-up, which every restart of the sidecar would otherwise pay (issue 12).
const requireLazily = createRequire(import.meta.url);
const loadPostHog = () => (requireLazily('posthog-node') as typeof import('posthog-node')).PostHog;

export interface FlagsOptions {
  /** Flag keys this sidecar evaluates (e.g. ['stream-logs']). */
  names: readonly string[];
  posthogKey?: string;
  posthogHost?: string;
  /** Secret (personal) API key: local evaluation from /flags/definitions. */
  posthogSecretKey?: string;
  intervalMs: number;
  /** Per request (default 3000). */
  requestTimeoutMs?: number;
  distinctId: string;
  version: string;
  /**
   * Person properties flags are evaluated with, beside hostname and version
   * (environment, pool, datapath): what a release condition can target.
   */
  properties?: Readonly<Record<string, string | undefined>>;
  /** The configuration's flagOverrides (TURNPIKE_FLAG_<NAME>, ..._PAYLOAD). */
  overrides?: Config['flagOverrides'];
  log: Logger;
}

export interface Flags {
  isEnabled(name: string): boolean;
  get(name: string): FlagState;
  /** Called after every change of a flag's state or payload. */
  onChange(listener: (name: string, state: FlagState, prev: FlagState) => void): () => void;
  /** Evaluates now (joins a running evaluation); resolves when done. */
  refresh(): Promise<void>;
  /** Sets person properties (e.g. the datapath once eBPF is up); a change is evaluated at once. */
  setProperties(props: Readonly<Record<string, string | undefined>>): void;
  /** The person properties flags are evaluated with. */
  properties(): Readonly<Record<string, string>>;
  /** Whether a PostHog client exists. */
  readonly posthog: boolean;
  close(): Promise<void>;
}

const OFF: FlagState = { on: false, payload: undefined, source: 'default' };
const DEFAULT_HOST = 'https://us.i.posthog.com';

/** A flag's override (`<NAME>` and `<NAME>_PAYLOAD` in flagOverrides) -> state, undefined when unset; throws on a value that is not a boolean. */
export function flagOverride(name: string, overrides: NonNullable<Config['flagOverrides']>): FlagState | undefined {
  const key = flagOverrideKey(name);
  const raw = overrides[key]?.trim().toLowerCase();
  if (raw === undefined || raw === '') return undefined;
  if (['true', '1', 'on', 'yes'].includes(raw)) {
    const payload = overrides[key + '_PAYLOAD'];
    return { on: true, payload: payload === '' ? undefined : payload, source: 'env' };
  }
  if (['false', '0', 'off', 'no'].includes(raw)) return { on: false, payload: undefined, source: 'env' };
  throw new Error(`${FLAG_ENV_PREFIX}${key}: expected true or false, got "${raw}"`);
}

function sameState(a: FlagState, b: FlagState): boolean {
  return a.on === b.on && a.source === b.source && JSON.stringify(a.payload) === JSON.stringify(b.payload);
}

export function createFlags(opts: FlagsOptions): Flags {
  const log = opts.log;
  const timeoutMs = opts.requestTimeoutMs ?? 3000;
  const states = new Map<string, FlagState>();
  const overrides = new Map<string, FlagState>();
  const listeners = new Set<(name: string, s: FlagState, prev: FlagState) => void>();

  const set = (name: string, next: FlagState) => {
    const prev = states.get(name) ?? OFF;
    if (sameState(prev, next)) return;
    states.set(name, next);
    if (prev.on !== next.on) log.info({ flag: name, from: prev.on, to: next.on, source: next.source }, 'feature flag changed');
    else log.info({ flag: name, value: next.on, source: next.source, payload: next.payload }, 'feature flag payload changed');
    for (const l of listeners) {
      try {
        l(name, next, prev);
      } catch (err) {
        log.warn({ err, flag: name }, 'flag listener failed');
      }
    }
  };

  for (const name of opts.names) {
    try {
      const o = flagOverride(name, opts.overrides ?? {});
      if (o) overrides.set(name, o);
    } catch (err) {
      log.warn({ err: (err as Error).message }, 'ignoring flag override');
    }
  }
  for (const [name, o] of overrides) set(name, o);

  const remoteNames = opts.names.filter((n) => !overrides.has(n));
  let client: PostHog | undefined;
  // Health of the latest flag request, recorded by the fetch wrapper.
  let lastOk = false;
  let failing = false;

  const healthFetch = async (url: string, init: Parameters<typeof fetch>[1]) => {
    const path = new URL(url).pathname;
    const isFlags = path.startsWith('/flags');
    const signal = init?.signal ? AbortSignal.any([init.signal, AbortSignal.timeout(timeoutMs)]) : AbortSignal.timeout(timeoutMs);
    try {
      const res = await fetch(url, { ...init, signal });
      const text = await res.text();
      let ok = res.status === 304 || (res.status >= 200 && res.status < 300);
      if (ok && res.status !== 304 && isFlags) {
        try {
          JSON.parse(text);
        } catch {
          ok = false;
        }
      }
      if (isFlags) lastOk = ok;
      return {
        status: res.status,
        headers: res.headers,
        text: async () => text,
        json: async () => JSON.parse(text),
      };
    } catch (err) {
      if (isFlags) lastOk = false;
      throw err;
    }
  };

  if (opts.posthogKey && remoteNames.length > 0) {
    const local = opts.posthogSecretKey !== undefined;
    client = new (loadPostHog())(opts.posthogKey, {
      host: opts.posthogHost ?? DEFAULT_HOST,
      sendFeatureFlagEvent: false,
      // This client only reads flags: nothing is captured, nothing goes to /batch/.
      before_send: () => null,
      featureFlagsRequestTimeoutMs: timeoutMs,
      featureFlagsRequestMaxRetries: 0,
      requestTimeout: timeoutMs,
      fetchRetryCount: 0,
      disableGeoip: true,
      // Definitions are reloaded by our own tick, so a flip is seen within one interval.
      ...(local ? { secretKey: opts.posthogSecretKey, featureFlagsPollingInterval: null } : {}),
      fetch: healthFetch as never,
    });
    client.on('error', (err: unknown) => log.debug({ err }, 'posthog error'));
  }

  // Sent with every evaluation (remote) or matched by the SDK (local): an
  // operator targets part of the fleet with a release condition on these.
  const personProperties: Record<string, string> = {};
  const setProperties = (props: Readonly<Record<string, string | undefined>>): boolean => {
    let changed = false;
    for (const [k, v] of Object.entries(props)) {
      if (v === undefined || personProperties[k] === v) continue;
      personProperties[k] = v;
      changed = true;
    }
    return changed;
  };
  setProperties({ hostname: hostname(), version: opts.version, ...opts.properties });

  const evaluate = async () => {
    if (!client) return;
    let results: Map<string, FlagState>;
    try {
      if (opts.posthogSecretKey) await client.reloadFeatureFlags();
      // evaluateFlags does not reject on HTTP failures; the guard is for a hung promise.
      const snap = await Promise.race([
        client.evaluateFlags(opts.distinctId, { flagKeys: [...remoteNames], personProperties: { ...personProperties } }),
        new Promise<never>((_, reject) => setTimeout(() => reject(new Error('flag evaluation timed out')), timeoutMs * 2).unref()),
      ]);
      results = new Map(
        remoteNames.map((name) => {
          const v = snap.getFlag(name, { sendFeatureFlagEvents: false });
          const on = v === true || (typeof v === 'string' && v.length > 0);
          return [name, { on, payload: on ? snap.getFlagPayload(name) ?? undefined : undefined, source: 'posthog' as const }];
        }),
      );
      if (!lastOk) throw new Error('PostHog flag request failed or timed out');
      if (failing) log.info('PostHog flags reachable again');
      failing = false;
    } catch (err) {
      if (!failing) log.warn({ err: (err as Error).message }, 'PostHog flags unavailable; flags are off');
      failing = true;
      results = new Map(remoteNames.map((n) => [n, { on: false, payload: undefined, source: 'posthog' as const }]));
    }
    for (const [name, s] of results) {
      // A flag that was never on stays 'default'-sourced rather than logging a no-op transition.
      const prev = states.get(name) ?? OFF;
      if (!s.on && !prev.on) continue;
      set(name, s);
    }
  };

  let running: Promise<void> | undefined;
  const refresh = () => {
    running ??= evaluate().finally(() => (running = undefined));
    return running;
  };
  let timer: NodeJS.Timeout | undefined;
  if (client) {
    void refresh();
    timer = setInterval(() => void refresh(), opts.intervalMs);
    timer.unref();
  }

  return {
    isEnabled: (name) => (states.get(name) ?? OFF).on,
    get: (name) => states.get(name) ?? OFF,
    onChange(l) {
      listeners.add(l);
      return () => void listeners.delete(l);
    },
    refresh: () => (client ? refresh() : Promise.resolve()),
    setProperties(props) {
      if (setProperties(props) && client) void refresh();
    },
    properties: () => ({ ...personProperties }),
    posthog: client !== undefined,
    async close() {
      if (timer) clearInterval(timer);
      await running?.catch(() => {});
      await client?.shutdown(2000).catch(() => {});
    },
  };
}
