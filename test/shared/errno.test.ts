// One errno vocabulary for every layer: names as node reports socket errors
// (with the kernel's spelling of the aliases), texts as strerror(3) words them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { constants } from 'node:os';
import { errnoCode, errnoMessage, errnoName } from '../../src/shared/errno.ts';

test('errno names: node\'s, the kernel\'s aliases, codes only os.constants or the kernel know', () => {
  assert.equal(errnoName(1), 'EPERM');
  assert.equal(errnoName(-1), 'EPERM', 'libbpf returns errnos negated');
  assert.equal(errnoName(constants.errno.EHOSTUNREACH), 'EHOSTUNREACH');
  assert.equal(errnoName(constants.errno.EOPNOTSUPP), 'EOPNOTSUPP');
  assert.equal(errnoName(constants.errno.EAGAIN), 'EAGAIN');
  assert.equal(errnoName(constants.errno.EDOM), 'EDOM');
  assert.equal(errnoName(524), 'ENOTSUPP');
  assert.equal(errnoName(4000), undefined);
  assert.equal(errnoCode(constants.errno.EACCES), 'EACCES');
  assert.equal(errnoCode(-4000), 'errno4000');
});

test('errno texts read as strerror(3) does', () => {
  assert.equal(errnoMessage(constants.errno.ENOENT), 'No such file or directory');
  assert.equal(errnoMessage(constants.errno.EBUSY), 'Device or resource busy');
  assert.equal(errnoMessage(-constants.errno.E2BIG), 'Argument list too long');
  assert.equal(errnoMessage(constants.errno.EOPNOTSUPP), 'Operation not supported');
  assert.equal(errnoMessage(524), 'Operation not supported');
  assert.equal(errnoMessage(constants.errno.EDOM), undefined);
});
