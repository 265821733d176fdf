// A headless Chromium driven over the DevTools protocol on a pipe
// (--remote-debugging-pipe: the browser reads NUL-terminated JSON commands
// on fd 3 and writes replies and events on fd 4). A pipe needs no port and
// no network, so the browser can run in a network namespace of the test's
// with nothing else listening, and no driver package is needed for the few
// commands a test sends.
import { spawn, type ChildProcess } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';

export interface BrowserOptions {
  /** The chromium binary (Debian's by default). */
  executable?: string;
  /** Extra command-line switches. */
  args?: readonly string[];
  /** The browser's whole environment (HOME decides which NSS database it trusts). */
  env: Record<string, string>;
  /** Profile directory (--user-data-dir). */
  userDataDir: string;
  /** Run the browser through this prefix, e.g. ['nsenter', '--net=/run/netns/x']. */
  wrapper?: readonly string[];
}

export interface ConsoleLine {
  readonly type: string;
  readonly text: string;
}

export interface Browser {
  readonly pid: number | undefined;
  /** Evaluates `expression` in the page and returns its (awaited) value, which must be JSON. */
  evaluate<T>(expression: string, timeoutMs?: number): Promise<T>;
  /** The page's console output so far. */
  console(): readonly ConsoleLine[];
  /** The browser's stderr so far. */
  stderr(): string;
  /** Closes the browser (Browser.close, then SIGKILL after a grace period) and waits for it to exit. */
  close(): Promise<void>;
}

interface Reply {
  id?: number;
  method?: string;
  sessionId?: string;
  params?: Record<string, unknown>;
  result?: Record<string, unknown>;
  error?: { message: string; data?: string };
}

const DEFAULT_ARGS = [
  '--headless=new',
  '--remote-debugging-pipe',
  '--no-first-run',
  '--no-default-browser-check',
  '--disable-gpu',
  '--disable-extensions',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-dev-shm-usage',
  '--password-store=basic',
  '--use-mock-keychain',
];

export async function launchBrowser(opts: BrowserOptions): Promise<Browser> {
  const exe = opts.executable ?? '/usr/bin/chromium';
  const argv = [...(opts.wrapper ?? []), exe, ...DEFAULT_ARGS, `--user-data-dir=${opts.userDataDir}`, ...(opts.args ?? []), 'about:blank'];
  // A process group of its own: close() can end the renderer, GPU and zygote children too.
  const proc: ChildProcess = spawn(argv[0]!, argv.slice(1), { env: opts.env, detached: true, stdio: ['ignore', 'ignore', 'pipe', 'pipe', 'pipe'] });
  const toBrowser = proc.stdio[3] as Writable;
  const fromBrowser = proc.stdio[4] as Readable;
  let err = '';
  proc.stderr!.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-20_000)));
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));

  let nextId = 1;
  const pending = new Map<number, { resolve(r: Record<string, unknown>): void; reject(e: Error): void }>();
  const consoleLines: ConsoleLine[] = [];
  let buf = Buffer.alloc(0);
  fromBrowser.on('data', (d: Buffer) => {
    buf = Buffer.concat([buf, d]);
    let i;
    while ((i = buf.indexOf(0)) >= 0) {
      const msg = JSON.parse(buf.subarray(0, i).toString()) as Reply;
      buf = buf.subarray(i + 1);
      if (msg.id !== undefined) {
        const p = pending.get(msg.id);
        pending.delete(msg.id);
        if (msg.error) p?.reject(new Error(`CDP: ${msg.error.message}${msg.error.data ? ` (${msg.error.data})` : ''}`));
        else p?.resolve(msg.result ?? {});
      } else if (msg.method === 'Runtime.consoleAPICalled') {
        const args = (msg.params?.args ?? []) as { value?: unknown; description?: string }[];
        consoleLines.push({ type: String(msg.params?.type), text: args.map((a) => (a.value !== undefined ? String(a.value) : (a.description ?? ''))).join(' ') });
      }
    }
  });
  // A browser that dies fails every command still waiting, with its stderr.
  void exited.then(() => {
    for (const p of pending.values()) p.reject(new Error(`chromium exited (${proc.exitCode ?? proc.signalCode}):\n${err.slice(-3000)}`));
    pending.clear();
  });
  // Writes to a pipe whose reader is gone must not crash the test process.
  toBrowser.on('error', () => {});

  const send = (method: string, params: Record<string, unknown> = {}, sessionId?: string, timeoutMs = 15_000): Promise<Record<string, unknown>> =>
    new Promise((resolve, reject) => {
      if (proc.exitCode !== null || proc.signalCode !== null) return reject(new Error(`chromium is not running:\n${err.slice(-3000)}`));
      const id = nextId++;
      const timer = setTimeout(() => {
        pending.delete(id);
        reject(new Error(`CDP ${method}: no answer in ${timeoutMs} ms`));
      }, timeoutMs);
      pending.set(id, {
        resolve: (r) => (clearTimeout(timer), resolve(r)),
        reject: (e) => (clearTimeout(timer), reject(e)),
      });
      toBrowser.write(`${JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) })}\0`);
    });

  const close = async (): Promise<void> => {
    if (proc.exitCode === null && proc.signalCode === null) {
      await send('Browser.close', {}, undefined, 3000).catch(() => undefined);
      const grace = setTimeout(() => proc.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(grace);
    }
    // Children the browser left (it was killed, or crashed) go with their group.
    try {
      if (proc.pid !== undefined) process.kill(-proc.pid, 'SIGKILL');
    } catch {
      // the group is already gone
    }
  };

  let sessionId: string;
  try {
    const { targetInfos } = (await send('Target.getTargets')) as { targetInfos: { targetId: string; type: string }[] };
    const page = targetInfos.find((ti) => ti.type === 'page');
    const targetId = page ? page.targetId : ((await send('Target.createTarget', { url: 'about:blank' })).targetId as string);
    sessionId = (await send('Target.attachToTarget', { targetId, flatten: true })).sessionId as string;
    await send('Runtime.enable', {}, sessionId);
  } catch (e) {
    await close();
    throw e;
  }

  return {
    pid: proc.pid,
    async evaluate<T>(expression: string, timeoutMs = 30_000): Promise<T> {
      const r = (await send('Runtime.evaluate', { expression, awaitPromise: true, returnByValue: true }, sessionId, timeoutMs)) as {
        result: { value?: unknown };
        exceptionDetails?: { text: string; exception?: { description?: string } };
      };
      if (r.exceptionDetails) throw new Error(`in the page: ${r.exceptionDetails.exception?.description ?? r.exceptionDetails.text}`);
      return r.result.value as T;
    },
    console: () => consoleLines,
    stderr: () => err,
    close,
  };
}
