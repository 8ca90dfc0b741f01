import { mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

/** One measured figure, for the project and (when it has one) its bare baseline. */
export interface ResultRow {
  metric: string;
  unit: string;
  project: number;
  bare?: number;
}

/** One of the benchmark's targets, judged on this run's figures. */
export interface TargetResult {
  target: string;
  /** The figure the target is judged on, in words (ratio and values). */
  figure: string;
  met: boolean;
}

/** What a scenario hands back: its figures, its targets, and anything else worth keeping. */
export interface ScenarioResult {
  scenario: string;
  title: string;
  /** Column titles (default "project" and "bare"). */
  columns?: [string, string];
  params: Record<string, unknown>;
  rows: ResultRow[];
  targets: TargetResult[];
  notes?: string[];
  details?: unknown;
}

/** A number for a table: thousands separators for large values, three digits for small ones. */
export function fmt(value: number | undefined): string {
  if (value === undefined) return '';
  if (Number.isNaN(value)) return 'n/a';
  if (!Number.isFinite(value)) return '∞';
  const abs = Math.abs(value);
  if (abs >= 1000) return Math.round(value).toLocaleString('en-US');
  if (abs >= 100) return value.toFixed(0);
  if (abs >= 10) return value.toFixed(1);
  if (abs >= 1) return value.toFixed(2);
  if (abs === 0) return '0';
  return value.toFixed(3);
}

/** project/bare, or NaN when there is no baseline or it is zero. */
export function ratio(project: number, bare: number | undefined): number {
  if (bare === undefined || bare === 0 || Number.isNaN(bare)) return NaN;
  return project / bare;
}

/** A plain-text table: the first column (and `leftAlign` ones) left-aligned, numbers right-aligned. */
function table(header: string[], rows: string[][], leftAlign: number[] = []): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const left = new Set([0, ...leftAlign]);
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (left.has(i) ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

/** The table of one scenario's figures, as printed. */
export function formatScenario(result: ScenarioResult): string {
  const [a, b] = result.columns ?? ['project', 'bare'];
  const rows = result.rows.map((r) => [
    r.metric,
    r.unit,
    fmt(r.project),
    fmt(r.bare),
    r.bare === undefined || Number.isNaN(ratio(r.project, r.bare))
      ? ''
      : `${fmt(ratio(r.project, r.bare))}×`,
  ]);
  const params = Object.entries(result.params)
    .map(([k, v]) => `${k}=${Array.isArray(v) ? v.join(',') : String(v)}`)
    .join(' ');
  const notes = (result.notes ?? []).map((n) => `  note: ${n}`);
  return [
    `\n== ${result.title} (${params})`,
    table(['metric', 'unit', a, b, `${a}/${b}`], rows),
    ...notes,
  ].join('\n');
}

/** The final table: every target of the run, met or not, with its figure. */
export function formatSummary(results: ScenarioResult[]): string {
  const rows = results.flatMap((r) =>
    r.targets.map((t) => [
      r.scenario,
      t.target,
      t.met ? 'met' : 'NOT MET',
      t.figure.length > 120 ? `${t.figure.slice(0, 117)}...` : t.figure,
    ]),
  );
  if (rows.length === 0) return '';
  return `\n== Targets\n${table(['scenario', 'target', 'result', 'figure'], rows, [1, 2, 3])}`;
}

/** Machine facts worth keeping next to the figures: a loaded 2-core box is not a quiet server. */
export function machineInfo(): Record<string, unknown> {
  return {
    node: process.version,
    platform: `${os.platform()} ${os.release()}`,
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model,
    memoryGb: Math.round(os.totalmem() / 2 ** 30),
    loadavg: os.loadavg(),
  };
}

/** Writes the run's JSON under `outDir` and returns the file's path. */
export async function writeResults(
  outDir: string,
  run: { startedAt: string; options: unknown; machine: unknown; results: ScenarioResult[] },
): Promise<string> {
  await mkdir(outDir, { recursive: true });
  const stamp = run.startedAt.replace(/[:.]/g, '-');
  const file = path.join(outDir, `bench-${stamp}.json`);
  const text = `${JSON.stringify({ ...run, finishedAt: new Date().toISOString(), loadavgAtEnd: os.loadavg() }, null, 2)}\n`;
  await writeFile(file, text);
  await writeFile(path.join(outDir, 'latest.json'), text);
  return file;
}

/** A target of the form "project ≤ limit × bare" (or ≥ for `atLeast`). */
export function ratioTarget(
  target: string,
  project: number,
  bare: number,
  limit: number,
  kind: 'atMost' | 'atLeast',
  unit = '',
): TargetResult {
  const r = ratio(project, bare);
  const met = kind === 'atMost' ? r <= limit : r >= limit;
  return {
    target,
    met: Number.isFinite(r) && met,
    figure: `${fmt(r)}× (${fmt(project)}${unit} vs ${fmt(bare)}${unit})`,
  };
}
