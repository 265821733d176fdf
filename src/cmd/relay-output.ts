// The relay's stdout and stderr as the launcher passes them on. The relay
// does not write to the launcher's output directly: a line of its own could
// otherwise pass for the sidecar's or the launcher's (a forged security
// event, say). Each JSON log line is marked as the relay's (relayLogLine);
// anything else becomes a field of a launcher line. Lines are bounded.
import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import type { LogHub } from '../shared/logger.ts';
import { relayLogLine } from '../sidecar/relay-line.ts';

/** Longest line passed on; the rest of a longer one is dropped. */
const MAX_LINE = 64 * 1024;
/** Longest text kept of a line that is not a log line. */
const MAX_TEXT = 2048;

/** Calls `onLine` for each line of `stream` (without its newline), cut at MAX_LINE. */
export function eachLine(stream: Readable, onLine: (line: string) => void): void {
  let buf = '';
  let skipping = false; // inside the dropped rest of an overlong line
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    let start = 0;
    for (let nl = chunk.indexOf('\n'); nl >= 0; nl = chunk.indexOf('\n', start)) {
      if (!skipping) onLine((buf + chunk.slice(start, nl)).slice(0, MAX_LINE));
      buf = '';
      skipping = false;
      start = nl + 1;
    }
    if (skipping) return;
    buf += chunk.slice(start);
    if (buf.length > MAX_LINE) {
      onLine(buf.slice(0, MAX_LINE));
      buf = '';
      skipping = true;
    }
  });
  stream.on('end', () => {
    if (buf && !skipping) onLine(buf);
  });
}

/** Passes the relay's output on: its log lines marked as the relay's, other text wrapped in a launcher line. */
export function passRelayOutput(stdout: Readable, stderr: Readable, hub: LogHub, log: Logger): void {
  const other = (stream: string, line: string) => {
    if (line.trim() !== '') log.warn({ child: 'relay', stream, line: line.slice(0, MAX_TEXT) }, 'relay output');
  };
  eachLine(stdout, (line) => {
    const marked = relayLogLine(line);
    if (marked !== undefined) hub.writeLine(marked);
    else other('stdout', line);
  });
  eachLine(stderr, (line) => other('stderr', line));
}
