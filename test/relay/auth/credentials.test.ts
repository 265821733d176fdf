// Credential sources with injected time: static users, coturn REST secret,
// Firezone scheme, and the chain.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import {
  createCredentialChain,
  createFirezoneCredentials,
  createRestCredentials,
  createStaticCredentials,
  firezonePassword,
  mintFirezoneCredential,
  mintRestCredential,
  restPassword,
} from '../../../src/relay/auth/index.ts';

const T = 1_699_999_000_000; // ms; REST expiry 1700000000 is 1000 s later

test('static users: known, unknown, all three input shapes', () => {
  for (const users of [{ alice: 'pw' }, new Map([['alice', 'pw']]), [['alice', 'pw']] as const]) {
    const s = createStaticCredentials(users);
    assert.equal(s.passwordFor('alice', T), 'pw');
    assert.equal(s.passwordFor('bob', T), undefined);
  }
});

test('REST password matches a vector computed with openssl', () => {
  // printf '%s' 1700000000:alice | openssl dgst -sha1 -hmac north-wind -binary | base64
  assert.equal(restPassword('north-wind', '1700000000:alice'), 'Oko4dt8u/EbTRjRUJWQDFm/zTCc=');
  const src = createRestCredentials('north-wind');
  assert.equal(src.passwordFor('1700000000:alice', T), 'Oko4dt8u/EbTRjRUJWQDFm/zTCc=');
});

test('REST password agrees with the openssl binary when it is installed', (t) => {
  let expected: string;
  try {
    const mac = execFileSync('openssl', ['dgst', '-sha1', '-hmac', 's3cr3t', '-binary'], { input: '1800000000:carol' });
    expected = mac.toString('base64');
  } catch {
    t.skip('openssl not installed');
    return;
  }
  assert.equal(restPassword('s3cr3t', '1800000000:carol'), expected);
});

test('REST credentials expire; bare expiry accepted; junk usernames refused', () => {
  const src = createRestCredentials('north-wind');
  assert.equal(src.passwordFor('1700000000:alice', 1_700_000_000_000), restPassword('north-wind', '1700000000:alice'), 'valid through its expiry second');
  assert.equal(src.passwordFor('1700000000:alice', 1_700_000_000_001), undefined, 'expired');
  assert.equal(src.passwordFor('1700000000', T), restPassword('north-wind', '1700000000'));
  for (const bad of ['alice', 'alice:1700000000', '', ':', '-5:x', '1e12:x', '0x10:x']) {
    assert.equal(src.passwordFor(bad, T), undefined, bad);
  }
});

test('mintRestCredential round-trips through the REST source', () => {
  const c = mintRestCredential('k', 'dave', 600, T);
  assert.equal(c.username, `${Math.floor(T / 1000) + 600}:dave`);
  assert.equal(createRestCredentials('k').passwordFor(c.username, T), c.password);
  assert.equal(createRestCredentials('k').passwordFor(c.username, T + 601_000), undefined);
  assert.equal(createRestCredentials('other').passwordFor(c.username, T) === c.password, false);
  assert.equal(mintRestCredential('k', undefined, 60, T).username, String(Math.floor(T / 1000) + 60));
});

test('Firezone password: unpadded base64 of SHA-256("expiry:secret:salt") (openssl vector)', () => {
  // printf '%s' 1700000000:north-wind:s4lt | openssl dgst -sha256 -binary | base64  -> ...itM=
  assert.equal(firezonePassword('north-wind', 1700000000, 's4lt'), 'ICUJFdhQr1nzamZPsPyQA99TNwm2PMBUE0GlKbAnitM');
  const src = createFirezoneCredentials('north-wind');
  assert.equal(src.passwordFor('1700000000:s4lt', T), 'ICUJFdhQr1nzamZPsPyQA99TNwm2PMBUE0GlKbAnitM');
  assert.equal(src.passwordFor('1700000000:s4lt', 1_700_000_001_000), undefined, 'expired');
  assert.equal(src.passwordFor('1700000000', T), undefined, 'salt required');
  assert.equal(src.passwordFor('1700000000:', T), undefined, 'empty salt');
  const c = mintFirezoneCredential('north-wind', 'abc', 60, T);
  assert.equal(src.passwordFor(c.username, T), c.password);
});

test('chain: first source that knows the user wins; unknown everywhere is undefined', () => {
  const chain = createCredentialChain([createStaticCredentials({ alice: 'static' }), createRestCredentials('north-wind')]);
  assert.equal(chain.passwordFor('alice', T), 'static');
  assert.equal(chain.passwordFor('1700000000:alice', T), restPassword('north-wind', '1700000000:alice'));
  assert.equal(chain.passwordFor('nobody', T), undefined);
});

test('empty secrets are a configuration error', () => {
  assert.throws(() => createRestCredentials(''));
  assert.throws(() => createFirezoneCredentials(''));
});

test('userOf: the quota key each scheme names, the same for every credential minted for one user', () => {
  const rest = createRestCredentials('north-wind');
  assert.equal(rest.userOf('1700000000:alice'), 'alice');
  assert.equal(rest.userOf(mintRestCredential('north-wind', 'alice', 60, T + 5_000_000).username), 'alice', 'a fresh expiry, the same user');
  assert.equal(rest.userOf('1700000000:alice:work'), 'alice:work', 'everything after the first colon');
  assert.equal(rest.userOf('1700000000'), '1700000000', 'a bare expiry names nobody: its own quota');
  assert.equal(rest.userOf('1700000000:'), '1700000000:');
  assert.equal(rest.userOf('alice'), undefined, 'not of the form');

  const fz = createFirezoneCredentials('fz-secret');
  assert.equal(fz.userOf(mintFirezoneCredential('fz-secret', 's4lt', 60, T).username), 's4lt');
  assert.equal(fz.userOf('1700000000'), undefined, 'salt required');

  const s = createStaticCredentials({ alice: 'pw' });
  assert.equal(s.userOf('alice'), 'alice');
  assert.equal(s.userOf('bob'), undefined);

  // The chain asks in the order passwordFor does.
  const chain = createCredentialChain([createStaticCredentials({ '1700000000:alice': 'static' }), rest]);
  assert.equal(chain.userOf('1700000000:alice'), '1700000000:alice', 'the static user answers first');
  assert.equal(chain.userOf('1700000001:alice'), 'alice');
  assert.equal(chain.userOf('nobody'), undefined);
});
