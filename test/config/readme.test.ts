// Every setting is documented: each environment variable of the schema appears
// in the README (the operator's table, or the internal variables' paragraph).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { ENV_NAMES, FLAG_ENV_PREFIX } from '../../src/config/env.ts';

const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');

test('the README names every configuration variable', () => {
  const names = Object.values(ENV_NAMES).flatMap((n) => (typeof n === 'string' ? [n] : [...n]));
  const missing = names.filter((n) => !readme.includes(n));
  assert.deepEqual(missing, []);
  assert.ok(readme.includes(FLAG_ENV_PREFIX), 'flag overrides documented');
});
