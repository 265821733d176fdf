// Opens and loads a BPF object through libbpf: binding-map capacity, pin
// paths under pinDir (reusing a pinned map when it still fits the object's
// definition), bpffs mounted when pinDir needs it, then the program and a
// handle for every map. Everything after loading works on what this returns.
import { existsSync, mkdirSync, readFileSync, unlinkSync } from 'node:fs';
import { constants } from 'node:os';
import { basename, join } from 'node:path';
import { execFileSync } from 'node:child_process';
import type { Logger } from 'pino';
import { decodeChanKey, decodeChanValue } from './abi.ts';
import { BINDING_MAPS, tableSizes, type ChannelBinding } from './bindings.ts';
import { BpfError } from './errors.ts';
import { BPF_MAP_TYPE_HASH, BPF_MAP_TYPE_PERF_EVENT_ARRAY, libbpf, type LibBpf, type Ptr } from './libbpf.ts';
import { mapEntries, openPinnedMap, type MapHandle } from './maps.ts';
import { routeLibbpfLogs } from './print.ts';

const { EACCES, ENOENT, EPERM } = constants.errno;

export const PROGRAM_NAME = 'turn_router';

/** Arrays with one block of rows per CPU (turn_router_shared.h tp_path_row
 * and tp_reason_row, maps.h nh_cache): the object declares one CPU's worth of
 * max_entries and the loader multiplies it by the possible CPUs. */
export const PER_CPU_ROW_MAPS = ['tp_path_stats', 'tp_reasons', 'nh_cache'] as const;

export interface LoadOptions {
  objectPath: string;
  /** Channel bindings the tables hold (default 65536); tableSizes sizes their maps. */
  mapCapacity?: number;
  /** bpffs directory for pinned maps and links; no pinning when unset. */
  pinDir?: string;
  /** A pinned map whose definition differs: 'replace' it (warn, old contents lost) or 'fail'. Default 'replace'. */
  onPinnedMismatch?: 'replace' | 'fail';
  /** Program to use; default turn_router, else the object's first program. */
  programName?: string;
  log: Logger;
}

/** A loaded object; close it with lib.objectClose(obj). */
export interface LoadedObject {
  lib: LibBpf;
  obj: Ptr;
  objectName: string;
  programName: string;
  progFd: number;
  maps: Map<string, MapHandle>;
  /** tp_ maps reused from pins (the rest were created). */
  reusedMaps: string[];
  /** Bindings read from pinned maps of the earlier hash layout, which were replaced: the caller installs them again. */
  legacyBindings: ChannelBinding[];
}

/** Mounts bpffs at /sys/fs/bpf when pinDir lives there and it is not mounted yet. */
export function ensureBpffs(pinDir: string, log: Logger): void {
  if (pinDir.startsWith('/sys/fs/bpf')) {
    const mounts = readFileSync('/proc/mounts', 'utf8');
    if (!/^\S+ \/sys\/fs\/bpf bpf /m.test(mounts)) {
      log.info('mounting bpffs at /sys/fs/bpf');
      try {
        execFileSync('mount', ['-t', 'bpf', 'bpf', '/sys/fs/bpf'], { stdio: 'pipe' });
      } catch (err) {
        const stderr = (err as { stderr?: Buffer }).stderr?.toString().trim();
        throw new BpfError(`mount bpffs at /sys/fs/bpf failed: ${stderr || (err as Error).message}`, 'BPFFS');
      }
    }
  }
  mkdirSync(pinDir, { recursive: true });
}

/** Opens and loads the object, reusing pinned maps; see the file comment. */
export function loadObject(opts: LoadOptions): LoadedObject {
  const lib = libbpf();
  const log = opts.log;
  routeLibbpfLogs(log);
  const capacity = opts.mapCapacity ?? 65536;
  const objectName = basename(opts.objectPath);
  const what = `load ${objectName}`;
  const sizes: Record<string, number> = tableSizes(capacity);

  const obj = lib.objectOpenFile(opts.objectPath, null);
  if (!obj) {
    const errno = lib.errno();
    throw BpfError.fromErrno(what, errno, errno === ENOENT ? `no file at ${opts.objectPath} (run make -C bpf)` : opts.objectPath);
  }
  try {
    const reused: string[] = [];
    const legacy: ChannelBinding[] = [];
    for (let m = lib.objectNextMap(obj, null); m; m = lib.objectNextMap(obj, m)) {
      const name = lib.mapName(m);
      const size = sizes[name];
      if (size !== undefined) {
        const err = lib.mapSetMaxEntries(m, size);
        if (err < 0) throw BpfError.fromErrno(`set max_entries of ${name} to ${size}`, -err);
      }
      if ((PER_CPU_ROW_MAPS as readonly string[]).includes(name)) {
        const rows = lib.mapMaxEntries(m) * lib.numPossibleCpus();
        const err = lib.mapSetMaxEntries(m, rows);
        if (err < 0) throw BpfError.fromErrno(`set max_entries of ${name} to ${rows}`, -err);
      }
      if (opts.pinDir && name.startsWith('tp_')) {
        const path = join(opts.pinDir, name);
        if (existsSync(path)) {
          if (checkPinned(lib, m, name, path, opts.onPinnedMismatch ?? 'replace', log, legacy)) reused.push(name);
        }
        const err = lib.mapSetPinPath(m, path);
        if (err < 0) throw BpfError.fromErrno(`set pin path of ${name}`, -err);
      }
    }
    if (opts.pinDir) ensureBpffs(opts.pinDir, log);

    const err = lib.objectLoad(obj);
    if (err < 0) {
      const hints: Record<number, string> = {
        [EPERM]: 'needs root or CAP_BPF + CAP_PERFMON + CAP_NET_ADMIN',
        [EACCES]: 'the verifier rejected the program (its log is logged by module bpf at warn level)',
      };
      throw BpfError.fromErrno(what, -err, hints[-err] ?? '');
    }

    const programName = opts.programName ?? PROGRAM_NAME;
    let prog = lib.objectFindProgramByName(obj, programName);
    if (!prog && opts.programName === undefined) prog = lib.objectNextProgram(obj, null);
    if (!prog) throw new BpfError(`${what} failed: no program named ${programName}`, 'NO_PROGRAM');

    const maps = new Map<string, MapHandle>();
    for (let m = lib.objectNextMap(obj, null); m; m = lib.objectNextMap(obj, m)) {
      const name = lib.mapName(m);
      maps.set(name, {
        name,
        ptr: m,
        fd: lib.mapFd(m),
        type: lib.mapType(m),
        keySize: lib.mapKeySize(m),
        valueSize: lib.mapValueSize(m),
        maxEntries: lib.mapMaxEntries(m),
      });
    }
    const created = [...maps.keys()].filter((n) => n.startsWith('tp_') && !reused.includes(n));
    log.info(
      { object: objectName, program: lib.programName(prog), capacity, pinDir: opts.pinDir, reused, created, libbpf: `${lib.majorVersion()}.${lib.minorVersion()}` },
      'bpf object loaded',
    );
    return { lib, obj, objectName, programName: lib.programName(prog), progFd: lib.programFd(prog), maps, reusedMaps: reused, legacyBindings: legacy };
  } catch (err) {
    lib.objectClose(obj);
    throw err;
  }
}

/**
 * Compares a pinned map with the object's definition. True when libbpf may
 * reuse it; on a mismatch either throws or removes the pin so a new map is
 * created and pinned in its place. A tp_chan_to_peer of the earlier layout
 * (a hash map, key tp_chan_key, value tp_chan_value) has its bindings read
 * into legacy first, so an upgrade keeps them.
 */
function checkPinned(lib: LibBpf, m: Ptr, name: string, path: string, policy: 'replace' | 'fail', log: Logger, legacy: ChannelBinding[]): boolean {
  const { fd, info } = openPinnedMap(lib, path);
  try {
    const have = { type: info.type, keySize: info.key_size, valueSize: info.value_size, maxEntries: info.max_entries, flags: info.map_flags };
    const want = { type: lib.mapType(m), keySize: lib.mapKeySize(m), valueSize: lib.mapValueSize(m), maxEntries: lib.mapMaxEntries(m), flags: lib.mapFlags(m) };
    // A perf event array left at 0 entries is sized to the CPU count by libbpf.
    if (want.type === BPF_MAP_TYPE_PERF_EVENT_ARRAY && want.maxEntries === 0) want.maxEntries = have.maxEntries!;
    const diffs = (Object.keys(want) as (keyof typeof want)[])
      .filter((k) => want[k] !== have[k])
      .map((k) => `${k} pinned ${have[k]}, object wants ${want[k]}`);
    if (diffs.length === 0) return true;
    const msg = `pinned map ${path} differs from ${name} in the object: ${diffs.join('; ')}`;
    if (policy === 'fail') throw new BpfError(`${msg} (remove the pin or use onPinnedMismatch: 'replace')`, 'PIN_MISMATCH');
    if (name === BINDING_MAPS[0] && info.type === BPF_MAP_TYPE_HASH && info.key_size === 24 && info.value_size === 48) {
      const found = readLegacyBindings(lib, fd, path);
      legacy.push(...found);
      log.info({ map: name, path, bindings: found.length }, 'pinned bindings of the hash-map layout read: they move to the binding tables');
    } else if (name === BINDING_MAPS[1] && info.type === BPF_MAP_TYPE_HASH) {
      log.info({ map: name, path }, 'pinned map of the hash-map layout replaced: its bindings move with tp_chan_to_peer');
    } else {
      log.warn({ map: name, path, diffs }, `${msg}: replacing it (its entries are lost)`);
    }
    unlinkSync(path);
    return false;
  } finally {
    lib.close(fd);
  }
}

/** Every binding of a tp_chan_to_peer hash map of the earlier layout (key tp_chan_key, value tp_chan_value). */
function readLegacyBindings(lib: LibBpf, fd: number, path: string): ChannelBinding[] {
  const out: ChannelBinding[] = [];
  for (const [key, value] of mapEntries(lib, { name: path, fd, keySize: 24, valueSize: 48 })) {
    try {
      const k = decodeChanKey(key);
      const v = decodeChanValue(value);
      out.push({ client: k.client, channel: k.channel, peer: v.peer, allocationPort: v.allocationPort });
    } catch {
      // an entry that does not decode is not carried over; the relay's resync restores what it owns
    }
  }
  return out;
}
