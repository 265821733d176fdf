// The committed seed inputs: test/fuzz/corpus/<target>/*.hex, one input per
// file as hex text ('#' starts a comment line, whitespace is ignored), and
// *.json for targets whose inputs are scripts. make-corpus.ts writes them.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

export const CORPUS_ROOT = new URL('../corpus/', import.meta.url).pathname;

function files(dir: string, ext: string): string[] {
  if (!existsSync(dir)) throw new Error(`fuzz corpus ${dir} is missing (node --import tsx test/fuzz/make-corpus.ts writes it)`);
  const names = readdirSync(dir).filter((n) => n.endsWith(ext)).sort();
  if (names.length === 0) throw new Error(`fuzz corpus ${dir} has no ${ext} files`);
  return names.map((n) => join(dir, n));
}

export function parseHex(text: string): Uint8Array {
  const digits = text
    .split('\n')
    .filter((l) => !l.trimStart().startsWith('#'))
    .join('')
    .replace(/\s+/g, '');
  if (!/^([0-9a-f]{2})*$/i.test(digits)) throw new Error('corpus file is not hex');
  return new Uint8Array(Buffer.from(digits, 'hex'));
}

export function readHexCorpus(dir: string): Uint8Array[] {
  return files(dir, '.hex').map((f) => parseHex(readFileSync(f, 'utf8')));
}

export function readJsonCorpus<T>(dir: string): T[] {
  return files(dir, '.json').map((f) => JSON.parse(readFileSync(f, 'utf8')) as T);
}

/** Hex text of a corpus file: a comment line, then 32 bytes a line. */
export function formatHex(comment: string, bytes: Uint8Array): string {
  const h = Buffer.from(bytes).toString('hex');
  const lines = [`# ${comment}`];
  for (let i = 0; i < h.length; i += 64) lines.push(h.slice(i, i + 64));
  return `${lines.join('\n')}\n`;
}
