// The targets, checked against one run's results, each with the
// margin by which it passes or misses.
import type { BenchResults, ContenderResult, Target } from './report.ts';
import { caseKey, type SizeResult } from './aggregate.ts';
import type { Summary } from './stats.ts';

const kpps = (n: number) => `${(n / 1000).toFixed(1)}k pps`;
const us = (n: number) => `${n.toFixed(2)} µs`;

/** "at most `limit`" (ratio or absolute): how far under or over. */
export function marginAtMost(value: number, limit: number): { verdict: 'PASS' | 'MISS'; margin: string } {
  if (value <= limit) return { verdict: 'PASS', margin: `${((1 - value / limit) * 100).toFixed(0)}% under the limit` };
  return { verdict: 'MISS', margin: `${(value / limit).toFixed(1)}× the limit` };
}

/** "at least `limit`": how far above or short. */
export function marginAtLeast(value: number, limit: number): { verdict: 'PASS' | 'MISS'; margin: string } {
  if (value >= limit) return { verdict: 'PASS', margin: `${((value / limit - 1) * 100).toFixed(0)}% above the limit` };
  return { verdict: 'MISS', margin: `${((1 - value / limit) * 100).toFixed(0)}% short of the limit` };
}

const XDP = ['turnpike-xdp-native', 'turnpike-xdp-skb'];
const USERSPACE = ['turnpike-userspace'];
/** Measured and compared, but the issue sets no target for it. */
const UNTARGETED = ['turnpike-standalone'];

export function checkTargets(r: BenchResults): Target[] {
  const out: Target[] = [];
  const base = r.contenders.find((c) => c.name === 'coturn' && c.status === 'ok');
  const find = (name: string) => r.contenders.find((c) => c.name === name);
  const missing = (c: ContenderResult | undefined) => (c ? (c.status === 'failed' ? 'failed to start' : 'no data') : 'not run');
  const cases = r.params.cases;
  const pair = (name: string, family: 4 | 6, size: number): [SizeResult | undefined, SizeResult | undefined] => [
    find(name)?.sizes.find((x) => x.family === family && x.size === size),
    base?.sizes.find((x) => x.family === family && x.size === size),
  ];

  // Contenders left out of this run (--contenders) get no rows.
  const ran = (name: string) => find(name) !== undefined;
  for (const name of XDP.filter(ran)) {
    for (const { family, size } of cases) {
      const label = `${name} ${caseKey(family, size)} B`;
      const [s, b] = pair(name, family, size);
      const what = `${label}: relay's own CPU per relayed packet ≤ 1/10 of coturn's (process + softirq net of the no-relay baseline)`;
      if (!s?.netTotalUs || !b?.netTotalUs) {
        out.push({ what, value: s && b ? 'no baseline' : missing(find(name)), margin: '', verdict: 'n/a' });
      } else {
        const ratio = s.netTotalUs.median / b.netTotalUs.median;
        const worst = s.netTotalUs.max / b.netTotalUs.median;
        const value = `${us(s.netTotalUs.median)} vs ${us(b.netTotalUs.median)}: ×${ratio.toFixed(3)} (worst run ×${worst.toFixed(3)})`;
        if (s.netTotalUs.median <= 0 || b.netTotalUs.median <= 0) {
          // Below the no-relay baseline is not a cheap relay but noise larger than the signal.
          out.push({ what, value, margin: 'net figure ≤ 0: noise (other load, tick sampling) exceeds the signal; rerun on a quiet machine', verdict: 'n/a' });
        } else {
          const m = marginAtMost(ratio, 0.1);
          out.push({ what, value, margin: m.margin, verdict: m.verdict });
        }
      }
      if (s?.totalUs && b?.totalUs) {
        const ratio = s.totalUs.median / b.totalUs.median;
        const m = marginAtMost(ratio, 0.1);
        out.push({
          what: `${label}: same, on the RAW figure (process + all softirq, incl. bridge and sink work any relay causes)`,
          value: `${us(s.totalUs.median)} vs ${us(b.totalUs.median)}: ×${ratio.toFixed(3)}`, margin: m.margin, verdict: m.verdict, reference: true,
        });
      }
      const hop = r.forwardHop?.sizes.find((x) => x.family === family && x.size === size);
      if (s?.netTotalUs && hop?.netTotalUs && hop.netTotalUs.median > 0) {
        out.push({
          what: `${label}: relay's own CPU per packet against a kernel IP-forwarding hop's on the same topology (no stated target; for scale: the same hop through the kernel's forwarding path, no TURN)`,
          value: `${us(s.netTotalUs.median)} vs ${us(hop.netTotalUs.median)}: ×${(s.netTotalUs.median / hop.netTotalUs.median).toFixed(2)}`,
          margin: '', verdict: 'n/a', reference: true,
        });
      }
      const pw = `${label}: relayed pps ≥ coturn's (where not generator-capped)`;
      if (!s?.relayedPps || !b?.relayedPps) {
        out.push({ what: pw, value: missing(find(name)), margin: '', verdict: 'n/a' });
      } else {
        const ratio = s.relayedPps.median / b.relayedPps.median;
        const m = marginAtLeast(ratio, 1);
        // Below coturn while generator-capped says nothing about the relay's ceiling.
        const unknown = m.verdict === 'MISS' && s.generatorCapped;
        out.push({
          what: pw, value: `${kpps(s.relayedPps.median)} vs ${kpps(b.relayedPps.median)}: ×${ratio.toFixed(2)}${s.generatorCapped ? ' (generator-capped: a lower bound)' : ''}`,
          margin: unknown ? 'below coturn but generator-capped: the relay\'s ceiling was not reached' : m.margin, verdict: unknown ? 'n/a' : m.verdict,
        });
      }
    }
  }
  for (const name of [...USERSPACE, ...UNTARGETED].filter(ran)) {
    for (const { family, size } of cases) {
      const [s, b] = pair(name, family, size);
      const what = `${name} ${caseKey(family, size)} B: relayed pps ≥ 0.5× coturn's${UNTARGETED.includes(name) ? ' (no stated target; for comparison)' : ''}`;
      if (!s?.relayedPps || !b?.relayedPps) {
        out.push({ what, value: missing(find(name)), margin: '', verdict: 'n/a', reference: UNTARGETED.includes(name) });
        continue;
      }
      const ratio = s.relayedPps.median / b.relayedPps.median;
      const m = marginAtLeast(ratio, 0.5);
      out.push({ what, value: `${kpps(s.relayedPps.median)} vs ${kpps(b.relayedPps.median)}: ×${ratio.toFixed(2)}`, margin: m.margin, verdict: m.verdict, reference: UNTARGETED.includes(name) });
    }
  }
  out.push(...routedRows(r));
  const mapWhat = 'XDP binding maps with 65,536 bindings ≤ 16 MiB';
  const m = r.mapMemory.find((x) => x.capacity === 65_536);
  if (m && !('error' in m)) {
    const mm = marginAtMost(m.bindingBytes, 16 * 1048576);
    out.push({ what: mapWhat, value: `${(m.bindingBytes / 1048576).toFixed(1)} MiB`, margin: mm.margin, verdict: mm.verdict });
  } else {
    out.push({ what: mapWhat, value: m ? m.error : 'not run', margin: '', verdict: 'n/a' });
  }
  out.push({
    what: 'XDP per-path cost ≤ 2× an empty XDP program',
    value: 'measured by `node --import tsx bench/xdp-veth.bench.ts` (program ns/pkt from the kernel\'s BPF stats), not by this harness',
    margin: '', verdict: 'n/a',
  });
  return out;
}

/**
 * The routed topology (issue 11): the XDP path's own CPU per packet against
 * coturn's and against the kernel forwarding hop's there. No stated limit:
 * reference rows.
 */
function routedRows(r: BenchResults): Target[] {
  const t = r.routed;
  if (!t) return [];
  const out: Target[] = [];
  const base = t.contenders.find((c) => c.name === 'coturn' && c.status === 'ok');
  for (const c of t.contenders.filter((x) => XDP.includes(x.name))) {
    for (const { family, size } of r.params.routedCases ?? r.params.cases) {
      const at = (x: { sizes: SizeResult[] } | undefined) => x?.sizes.find((y) => y.family === family && y.size === size)?.netTotalUs;
      const s = at(c);
      const b = at(base);
      const hop = at(t.forwardHop);
      const what = `routed, one-way, forwarding off: ${c.name} ${caseKey(family, size)} B: relay's own CPU per packet against coturn's and against the kernel forwarding hop's`;
      if (!s) {
        out.push({ what, value: c.status === 'failed' ? 'failed to start' : c.caseErrors?.[caseKey(family, size)] ?? 'no data', margin: '', verdict: 'n/a', reference: true });
        continue;
      }
      const vs = (other: Summary | undefined, name: string) => (other && other.median > 0 ? `×${(s.median / other.median).toFixed(3)} ${name}'s (${us(other.median)})` : `${name}: no figure`);
      out.push({ what, value: `${us(s.median)}: ${vs(b, 'coturn')}, ${vs(hop, 'the hop')}`, margin: '', verdict: 'n/a', reference: true });
    }
  }
  return out;
}
