// The Grafana dashboard (deploy/grafana/turnpike.json) as its tests read it:
// its panels' PromQL expressions and the metric names they query.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../interop/harness.ts';

export const DASHBOARD_FILE = join(repoRoot, 'deploy/grafana/turnpike.json');

export interface Target {
  refId: string;
  expr: string;
  legendFormat?: string;
  datasource?: { type: string; uid: string };
}

export interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos: { h: number; w: number; x: number; y: number };
  datasource?: { type: string; uid: string };
  targets?: Target[];
  panels?: Panel[];
}

export interface Dashboard {
  uid: string;
  title: string;
  panels: Panel[];
  templating: { list: { name: string; type: string; query: unknown }[] };
}

export const loadDashboard = (): Dashboard => JSON.parse(readFileSync(DASHBOARD_FILE, 'utf8')) as Dashboard;

/** Every panel, rows' nested ones included. */
export const allPanels = (d: Dashboard): Panel[] => d.panels.flatMap((p) => [p, ...(p.panels ?? [])]);

/** Every query of the dashboard: panels' targets and query variables. */
export function expressions(d: Dashboard): string[] {
  const fromPanels = allPanels(d).flatMap((p) => (p.targets ?? []).map((t) => t.expr));
  const fromVariables = d.templating.list.flatMap((v) => (v.type === 'query' ? [String((v.query as { query?: string }).query ?? v.query)] : []));
  return [...fromPanels, ...fromVariables];
}

const PROMQL_KEYWORDS = new Set(['and', 'or', 'unless', 'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'offset', 'bool', 'inf', 'nan']);

/**
 * The metric names a PromQL expression (or a Grafana label_values() query)
 * reads: identifiers that are not functions, aggregation keywords, label
 * names (in matchers, by/without/on/ignoring lists, label_values' second
 * argument), durations or Grafana variables.
 */
export function metricNames(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""') // strings (label values)
    .replace(/\{[^}]*\}/g, ' ') // label matchers
    .replace(/\[[^\]]*\]/g, ' ') // range durations
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ') // label lists
    .replace(/\blabel_values\s*\(\s*([a-zA-Z_:][\w:]*)\s*,\s*\w+\s*\)/g, ' $1 ') // label_values(metric, label)
    .replace(/\$\{?\w+\}?/g, ' ') // Grafana variables
    .replace(/\b\d[\w.]*/g, ' '); // numbers and durations (0.9, 1e3, 1h)
  const names = new Set<string>();
  for (const m of stripped.matchAll(/[a-zA-Z_:][\w:]*/g)) {
    const after = stripped.slice(m.index! + m[0].length).trimStart();
    if (after.startsWith('(') || PROMQL_KEYWORDS.has(m[0].toLowerCase())) continue;
    names.add(m[0]);
  }
  return [...names];
}

/** Every metric name the dashboard queries, sorted. */
export const dashboardMetrics = (d = loadDashboard()): string[] => [...new Set(expressions(d).flatMap(metricNames))].sort();

/** Whether a Prometheus text exposition has at least one sample of `name`. */
export const hasSample = (exposition: string, name: string): boolean =>
  exposition.split('\n').some((line) => line.startsWith(`${name}{`) || line.startsWith(`${name} `));
