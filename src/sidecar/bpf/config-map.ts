// tp_config, the program's one-slot settings array (struct tp_config).
import { decodeConfig, encodeConfig, type TpConfig } from './abi.ts';
import { BpfError } from './errors.ts';
import { slotKey, type ObjectMaps } from './maps.ts';

export interface RouterConfig {
  listenPort: number;
  portMin: number;
  portMax: number;
  relayV4?: string | undefined;
  relayV6?: string | undefined;
  mtu: number;
  diagPerSec: number;
}

/** Writes slot 0 every time: the kernel reads zeros from an unwritten slot. */
export function writeConfig(maps: ObjectMaps, c: RouterConfig): void {
  if (c.portMin > c.portMax) throw new RangeError(`portMin ${c.portMin} > portMax ${c.portMax}`);
  const value = encodeConfig({ ...c, flags: 0 });
  const err = maps.lib.mapUpdateElem(maps.get('tp_config').fd, slotKey(0), value, 0n);
  if (err < 0) throw BpfError.fromErrno('write tp_config', -err);
}

export function readConfig(maps: ObjectMaps): TpConfig {
  const m = maps.get('tp_config');
  const out = new Uint8Array(m.valueSize);
  const err = maps.lib.mapLookupElem(m.fd, slotKey(0), out);
  if (err < 0) throw BpfError.fromErrno('read tp_config', -err);
  return decodeConfig(out);
}
