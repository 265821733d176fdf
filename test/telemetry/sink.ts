// A pino destination that keeps every line as a parsed object, for asserting
// on log output (the pino project's own test helper does the same).
import { Writable } from 'node:stream';

export interface Sink {
  readonly stream: Writable;
  readonly lines: Record<string, any>[];
  find(pred: (l: Record<string, any>) => boolean): Record<string, any> | undefined;
}

export function sink(): Sink {
  const lines: Record<string, any>[] = [];
  let buf = '';
  const stream = new Writable({
    write(chunk, _enc, cb) {
      buf += chunk.toString();
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (line.trim()) lines.push(JSON.parse(line));
      }
      cb();
    },
  });
  return { stream, lines, find: (pred) => lines.find(pred) };
}
