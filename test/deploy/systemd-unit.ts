// A reader of the parts of systemd unit files and environment files that the
// systemd deployment test needs, so it can run a service the way systemd
// would without systemd: keys as written (repeated keys kept in order),
// systemd's word splitting and quoting for Exec lines, Environment= and
// EnvironmentFile= with systemd's precedence (files override Environment=).
import { readFileSync } from 'node:fs';

export type Unit = Map<string, string[]>;

/** `Section.Key` -> values in file order; comments and blank lines dropped, `\` continuations joined. */
export function parseUnit(text: string): Unit {
  const unit: Unit = new Map();
  let section = '';
  for (const line of text.replace(/\\\n/g, ' ').split('\n')) {
    const l = line.trim();
    if (l === '' || l.startsWith('#') || l.startsWith(';')) continue;
    const header = /^\[(.+)\]$/.exec(l);
    if (header) {
      section = header[1]!;
      continue;
    }
    const eq = l.indexOf('=');
    const key = `${section}.${l.slice(0, eq).trim()}`;
    unit.set(key, [...(unit.get(key) ?? []), l.slice(eq + 1).trim()]);
  }
  return unit;
}

export function one(unit: Unit, key: string): string {
  const v = unit.get(key);
  if (!v || v.length !== 1) throw new Error(`${key}: expected one value, got ${JSON.stringify(v)}`);
  return v[0]!;
}

/** Splits a value into words the way systemd does: whitespace, '...' and "..." quoting, backslash escapes. */
export function splitWords(value: string): string[] {
  const words: string[] = [];
  let word: string | undefined;
  let quote: string | undefined;
  for (let i = 0; i < value.length; i++) {
    const c = value[i]!;
    if (quote) {
      if (c === quote) quote = undefined;
      else if (c === '\\' && quote === '"') word += value[++i] ?? '';
      else word += c;
    } else if (c === "'" || c === '"') {
      quote = c;
      word ??= '';
    } else if (/\s/.test(c)) {
      if (word !== undefined) words.push(word);
      word = undefined;
    } else if (c === '\\') word = (word ?? '') + (value[++i] ?? '');
    else word = (word ?? '') + c;
  }
  if (quote) throw new Error(`unterminated quote in ${value}`);
  if (word !== undefined) words.push(word);
  return words;
}

export interface ExecLine {
  /** `+`: runs with full privileges, outside User= and the sandbox. */
  privileged: boolean;
  argv: string[];
}

/** An Exec*= line: prefixes, then words with `$$` -> `$` and `${VAR}` from env (systemd's expansion). */
export function parseExec(value: string, env: Record<string, string>): ExecLine {
  const prefix = /^[-+@!:]*/.exec(value)![0];
  const argv = splitWords(value.slice(prefix.length)).map((w) =>
    w.replace(/\$\$|\$\{(\w+)\}/g, (m, name: string | undefined) => (m === '$$' ? '$' : (env[name!] ?? ''))),
  );
  return { privileged: prefix.includes('+'), argv };
}

/** KEY=VALUE lines of an EnvironmentFile (comments, blank lines and surrounding quotes handled). */
export function parseEnvFile(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const l = line.trim();
    if (l === '' || l.startsWith('#') || l.startsWith(';')) continue;
    const eq = l.indexOf('=');
    const v = l.slice(eq + 1).trim();
    env[l.slice(0, eq).trim()] = /^(['"]).*\1$/.test(v) ? v.slice(1, -1) : v;
  }
  return env;
}

/** The service's environment as systemd builds it: Environment= first, then EnvironmentFile= (a leading `-`: optional). */
export function serviceEnvironment(unit: Unit): Record<string, string> {
  const env: Record<string, string> = {};
  for (const v of unit.get('Service.Environment') ?? []) {
    for (const word of splitWords(v)) {
      const eq = word.indexOf('=');
      env[word.slice(0, eq)] = word.slice(eq + 1);
    }
  }
  for (const v of unit.get('Service.EnvironmentFile') ?? []) {
    const optional = v.startsWith('-');
    const path = optional ? v.slice(1) : v;
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (e) {
      if (optional) continue;
      throw e;
    }
    Object.assign(env, parseEnvFile(text));
  }
  return env;
}
