// Proves the koffi declarations of src/sidecar/bpf/structs.ts lay out the
// libbpf option and kernel info structs as the C compiler does with the
// installed headers (libbpf-dev, linux-libc-dev): a host C probe prints
// sizeof every struct and offsetof/sizeof every member, which must equal
// koffi's numbers. libbpf rejects an option struct whose sz it does not know
// and the kernel reads info fields by offset, so a mismatch is a real bug.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import koffi, { type TypeObject } from 'koffi';
import {
  ANONYMOUS_UNIONS,
  BpfLinkCreateOpts,
  BpfLinkInfo,
  BpfMapInfo,
  BpfTestRunOpts,
  BpfXdpQueryOpts,
  VaListTag,
} from '../../src/sidecar/bpf/structs.ts';
import { hasCommand, requireCapability } from '../helpers/env.ts';

const STRUCTS = [BpfTestRunOpts, BpfLinkCreateOpts, BpfXdpQueryOpts, BpfMapInfo, BpfLinkInfo];

/** "<C expression> <koffi's number>" for the size of each struct and the offset and size of every member. */
function expectations(type: TypeObject): [expr: string, want: number][] {
  const struct = `struct ${type.name}`;
  const out: [string, number][] = [[`sizeof(${struct})`, type.size]];
  const walk = (t: TypeObject, path: string, base: number) => {
    for (const m of Object.values(t.members ?? {})) {
      const at = base + m.offset;
      const p = ANONYMOUS_UNIONS.has(m.name) ? path : path ? `${path}.${m.name}` : m.name;
      if (p !== path) {
        out.push([`offsetof(${struct}, ${p})`, at]);
        out.push([`sizeof(((${struct} *)0)->${p})`, m.type.size]);
      }
      walk(m.type, p, at);
    }
  };
  walk(type, '', 0);
  return out;
}

const ready = () => hasCommand('cc') && existsSync('/usr/include/bpf/libbpf.h') && existsSync('/usr/include/linux/bpf.h');

test('structs.ts has the sizes and offsets of the installed libbpf and kernel headers', (t) => {
  if (!requireCapability(t, ready(), 'needs a C compiler and libbpf-dev headers')) return;
  const checks = STRUCTS.flatMap(expectations);
  if (process.arch === 'x64') checks.push(['sizeof(va_list)', koffi.sizeof(VaListTag)]);
  const dir = mkdtempSync(join(tmpdir(), 'tpbpf-structs-'));
  try {
    const src = join(dir, 'probe.c');
    writeFileSync(
      src,
      '#include <stdarg.h>\n#include <stddef.h>\n#include <stdio.h>\n#include <linux/bpf.h>\n#include <bpf/bpf.h>\n#include <bpf/libbpf.h>\n' +
        'int main(void) {\n' +
        checks.map(([expr]) => `  printf("%zu\\n", (size_t)(${expr}));\n`).join('') +
        '  return 0;\n}\n',
    );
    execFileSync('cc', ['-o', join(dir, 'probe'), src], { stdio: 'pipe' });
    const got = execFileSync(join(dir, 'probe'), { encoding: 'utf8' }).trim().split('\n').map(Number);
    assert.deepEqual(
      Object.fromEntries(checks.map(([expr], i) => [expr, got[i]])),
      Object.fromEntries(checks),
    );
    t.diagnostic(`${checks.length} sizes and offsets agree`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('option structs have the sizes libbpf 1.1 expects in sz', () => {
  // The sizes of struct bpf_test_run_opts, bpf_link_create_opts and
  // bpf_xdp_query_opts in libbpf 1.1 on LP64 (the loader used to hard-code them).
  assert.equal(koffi.sizeof(BpfTestRunOpts), 80);
  assert.equal(koffi.sizeof(BpfLinkCreateOpts), 64);
  assert.equal(koffi.sizeof(BpfXdpQueryOpts), 32);
});
