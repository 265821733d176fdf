// Starting contender processes inside a namespace and waiting for them.
import type { ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import type { Topology, Role } from '../../test/helpers/netns.ts';

export function spawnLogged(topo: Topology, role: Role, cmd: string, args: string[], logFile: string, env?: NodeJS.ProcessEnv): ChildProcess {
  const child = topo.spawn(role, cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: env ?? process.env });
  const log = createWriteStream(logFile, { flags: 'a' });
  child.stdout?.pipe(log);
  child.stderr?.pipe(log);
  return child;
}

export async function stopChild(child: ChildProcess, graceMs = 3000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Waits until something in the relay namespace answers a STUN Binding request
 * on the port (probed from the client namespace), or the child exits.
 */
export async function waitForStun(topo: Topology, address: string, port: number, child: ChildProcess, timeoutMs = 15_000): Promise<void> {
  const started = Date.now();
  const probe = `const d=require('dgram');const s=d.createSocket(process.argv[1].includes(':')?'udp6':'udp4');` +
    `const b=Buffer.alloc(20);b.writeUInt16BE(1,0);b.writeUInt32BE(0x2112a442,4);b.fill(7,8);` +
    `s.on('message',()=>{console.log('ok');process.exit(0)});setTimeout(()=>process.exit(1),400);s.send(b,Number(process.argv[2]),process.argv[1])`;
  while (Date.now() - started < timeoutMs) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`exited early (code ${child.exitCode ?? child.signalCode})`);
    try {
      const { stdout } = await topo.exec('client', process.execPath, ['-e', probe, address, String(port)]);
      if (stdout.includes('ok')) return;
    } catch {
      // not up yet
    }
    await sleep(200);
  }
  throw new Error(`no STUN answer on ${address}:${port} within ${timeoutMs} ms`);
}
