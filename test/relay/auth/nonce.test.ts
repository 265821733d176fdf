// Stateless nonces with injected time: fresh, stale, other address, tampered.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createNonceManager, issueNonce, verifyNonce, MAX_NONCE_LENGTH } from '../../../src/relay/auth/index.ts';

const SECRET = 'nonce-secret';
const CLIENT = '203.0.113.5:40000';
const T = 1_700_000_000_000;

test('a fresh nonce verifies from the same address and is printable and short', () => {
  const n = issueNonce(SECRET, CLIENT, T, 600);
  assert.equal(verifyNonce(SECRET, n, CLIENT, T), 'ok');
  assert.equal(verifyNonce(SECRET, n, CLIENT, T + 600_000), 'ok');
  assert.match(n, /^[\x21-\x7e]+$/);
  assert.ok(n.length <= MAX_NONCE_LENGTH && n.length < 128);
});

test('an expired nonce is stale (438), not invalid', () => {
  const n = issueNonce(SECRET, CLIENT, T, 600);
  assert.equal(verifyNonce(SECRET, n, CLIENT, T + 600_001), 'stale');
});

test('a nonce from another address, or under another secret, is invalid (401)', () => {
  const n = issueNonce(SECRET, CLIENT, T);
  assert.equal(verifyNonce(SECRET, n, '203.0.113.5:40001', T), 'invalid');
  assert.equal(verifyNonce(SECRET, n, '198.51.100.7:40000', T), 'invalid');
  assert.equal(verifyNonce('other-secret', n, CLIENT, T), 'invalid');
});

test('tampering with any character, or pushing the expiry out, is invalid', () => {
  const n = issueNonce(SECRET, CLIENT, T, 60);
  for (let i = 0; i < n.length; i++) {
    const c = n[i] === 'a' ? 'b' : 'a';
    const bad = n.slice(0, i) + c + n.slice(i + 1);
    if (bad === n) continue;
    assert.equal(verifyNonce(SECRET, bad, CLIENT, T), 'invalid', bad);
  }
  const [, sig] = n.split('.');
  const later = (T + 10 * 86_400_000).toString(36);
  assert.equal(verifyNonce(SECRET, `${later}.${sig}`, CLIENT, T + 120_000), 'invalid');
  for (const junk of ['', '.', 'abc', 'f//499k954d6OL34oL9FSTvy64sA', 'x'.repeat(800), `${n}.`]) {
    assert.equal(verifyNonce(SECRET, junk, CLIENT, T), 'invalid', junk.slice(0, 20));
  }
});

test('nonce manager wraps secret and TTL', () => {
  const m = createNonceManager({ secret: new TextEncoder().encode(SECRET), ttlSeconds: 10 });
  const n = m.issue(CLIENT, T);
  assert.equal(m.verify(n, CLIENT, T + 10_000), 'ok');
  assert.equal(m.verify(n, CLIENT, T + 10_001), 'stale');
  assert.throws(() => createNonceManager({ secret: '' }));
});
