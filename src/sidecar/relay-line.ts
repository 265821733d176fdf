// A relay log line as the sidecar and the launcher pass it on. The relay is
// less trusted than either: whatever it writes (over the link, or on the
// stdout it shares with the launcher) must not pass for their lines.

/** Fields only the sidecar sets on a line; a relay line's own values of them move under `relayFields`. */
const SIDECAR_FIELDS = ['event', 'rule', 'detail'] as const;

/**
 * A relay log line as it may be passed on: `process` is always 'relay' and
 * the sidecar's own fields (a security event's) are namespaced, so a relay
 * cannot write a line that passes for the sidecar's or the launcher's.
 * Undefined for text that is not a JSON object: callers never print that as
 * a log line.
 */
export function relayLogLine(json: string): string | undefined {
  let obj: unknown;
  try {
    obj = JSON.parse(json);
  } catch {
    return undefined;
  }
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) return undefined;
  const line = obj as Record<string, unknown>;
  const moved: Record<string, unknown> = {};
  for (const k of SIDECAR_FIELDS) {
    if (!(k in line)) continue;
    moved[k] = line[k];
    delete line[k];
  }
  return JSON.stringify({ ...line, process: 'relay', ...(Object.keys(moved).length > 0 ? { relayFields: moved } : {}) });
}
