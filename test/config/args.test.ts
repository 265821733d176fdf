// The one command-line parser: configuration flags, --config, an entry
// point's own flags and aliases; a line it cannot read is a ConfigError that
// names the flag and the reason.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { z } from 'zod';
import { parseCommandLine, type EntryFlags } from '../../src/config/args.ts';
import { ConfigError } from '../../src/config/errors.ts';

const OWN = {
  user: { type: 'string' },
  ttl: { type: 'string', schema: z.coerce.number().int().positive('must be positive').default(60) },
  json: { type: 'boolean' },
  transport: { type: 'string', field: 'relayTransport' },
} as const satisfies EntryFlags;

test('a flag per field, `--name VALUE` or `--name=VALUE`; the last repeat wins', () => {
  const l = parseCommandLine(['--listen-port', '4000', '--realm=a', '--realm', 'b', '--public-ipv4=203.0.113.1']);
  assert.deepEqual(l.raw, { listenPort: '4000', realm: 'b', publicIpv4: '203.0.113.1' });
  assert.deepEqual(l.sources, { listenPort: 'flag --listen-port', realm: 'flag --realm', publicIpv4: 'flag --public-ipv4' });
  assert.equal(l.configFile, undefined);
  assert.deepEqual(parseCommandLine(['--config', 'x.json']).configFile, 'x.json');
});

test("an entry point's own flags are checked by their schema; aliases set the field", () => {
  const l = parseCommandLine(['--user', 'bob', '--config=c.json', '--ttl=30', '--json', '--realm', 'r', '--transport', 'sidecar'], OWN);
  assert.deepEqual(l.own, { user: 'bob', ttl: 30, json: true });
  assert.deepEqual(l.raw, { realm: 'r', relayTransport: 'sidecar' });
  assert.equal(l.sources.relayTransport, 'flag --transport');
  assert.deepEqual(l.configArgv, ['--config=c.json', '--realm', 'r'], 'configuration flags as given, without the own flags');
  assert.deepEqual(parseCommandLine([], OWN).own, { user: undefined, ttl: 60, json: undefined });
});

test('a line it cannot read names the flag and the reason', () => {
  const cases: [string[], string, string, RegExp][] = [
    [['--bogus', '1'], '--bogus', 'command line', /unknown flag/],
    [['-p', '1'], '-p', 'command line', /unknown flag/],
    [['--listen-port'], 'listenPort', 'flag --listen-port', /expects a value/],
    [['--listen-port', '--realm', 'x'], 'listenPort', 'flag --listen-port', /not the flag --realm/],
    [['stray'], 'stray', 'command line', /unexpected argument/],
    [['--json=yes'], 'json', 'flag --json', /takes no value/],
    [['--ttl', '0'], 'ttl', 'flag --ttl', /must be positive/],
    [['--config'], 'config', 'flag --config', /expects a value/],
  ];
  for (const [argv, field, source, reason] of cases) {
    assert.throws(
      () => parseCommandLine(argv, OWN),
      (e: unknown) => {
        assert.ok(e instanceof ConfigError, String(e));
        assert.equal(e.issues.length, 1, e.message);
        assert.deepEqual([e.issues[0]!.field, e.issues[0]!.source], [field, source], argv.join(' '));
        assert.match(e.issues[0]!.reason, reason);
        assert.match(e.message, /^invalid command line:\n {2}/);
        return true;
      },
    );
  }
  // A value that starts with -- goes inline.
  assert.deepEqual(parseCommandLine(['--realm=--odd']).raw, { realm: '--odd' });
  assert.deepEqual(parseCommandLine(['--realm', '-odd']).raw, { realm: '-odd' });
});
