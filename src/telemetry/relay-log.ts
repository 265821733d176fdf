// Relay log lines arrive over the link as the relay's pino JSON lines. This
// parses one into the parts the sidecar forwards (level, module, message,
// fields), never throwing: the relay is less trusted than the sidecar, so a
// line that is not a JSON object becomes a warn-level line with the text.
import { levelLabel } from '../shared/logger.ts';
import type { Level } from 'pino';

export interface RelayLogEntry {
  /** False when the line was not a JSON object (then msg/fields describe the problem). */
  valid: boolean;
  level: Level;
  levelValue: number;
  module: string | undefined;
  msg: string;
  /** Remaining fields (without level, time, pid, hostname, msg). */
  fields: Record<string, unknown>;
  /** The error object pino serialized, when there is one. */
  err?: { type?: string; message?: string; stack?: string };
}

const MAX_LINE = 64 * 1024;

export function parseRelayLine(line: string): RelayLogEntry {
  const text = line.length > MAX_LINE ? line.slice(0, MAX_LINE) : line;
  let obj: unknown;
  try {
    obj = JSON.parse(text);
  } catch {
    obj = undefined;
  }
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) {
    return { valid: false, level: 'warn', levelValue: 40, module: undefined, msg: 'unparseable relay log line', fields: { line: text.slice(0, 512) } };
  }
  const { level, time: _t, pid: _p, hostname: _h, msg, module, err, ...fields } = obj as Record<string, unknown>;
  const value = typeof level === 'number' && Number.isFinite(level) ? level : 30;
  const e =
    typeof err === 'object' && err !== null
      ? {
          type: typeof (err as any).type === 'string' ? (err as any).type : undefined,
          message: typeof (err as any).message === 'string' ? (err as any).message : undefined,
          stack: typeof (err as any).stack === 'string' ? (err as any).stack : undefined,
        }
      : undefined;
  return {
    valid: true,
    level: levelLabel(value),
    levelValue: value,
    module: typeof module === 'string' ? module : undefined,
    msg: typeof msg === 'string' ? msg : e?.message ?? '',
    fields,
    ...(e ? { err: e } : {}),
  };
}
