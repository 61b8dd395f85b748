// `birch bench --report FILE.html`: one self-contained page (inline SVG, no scripts, nothing
// fetched) with each workload's table and, per workload, plots over time of throughput, memory and
// file size, one line per engine.
import type { BenchResult } from './measure.js';
import { benchTable, describeWorkload } from './run.js';
import type { BenchOptions } from './workloads.js';

const COLORS: Record<string, string> = { birchdb: '#2e7d32', lmdb: '#1565c0', level: '#ef6c00', sqlite: '#6a1b9a' };

function esc(s: string): string {
  return s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c] as string);
}

/** A round step (1, 2 or 5 times a power of ten) that cuts 0..v into about `parts` intervals. */
export function niceStep(v: number, parts = 4): number {
  if (!(v > 0)) return 1;
  const raw = v / parts;
  const p = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 5, 10]) if (m * p >= raw) return m * p;
  return 10 * p;
}

/** Axis ticks 0, step, 2 step... up to the first multiple of a round step at or past `v`. */
export function ticks(v: number): number[] {
  const step = niceStep(v);
  const n = Math.max(1, Math.ceil(v / step - 1e-9));
  return Array.from({ length: n + 1 }, (_, i) => +(i * step).toPrecision(12));
}

function shortNum(v: number): string {
  if (v >= 1e9) return `${+(v / 1e9).toFixed(1)}G`;
  if (v >= 1e6) return `${+(v / 1e6).toFixed(1)}M`;
  if (v >= 1e3) return `${+(v / 1e3).toFixed(1)}k`;
  return `${+v.toFixed(1)}`;
}

interface Series {
  name: string;
  points: [number, number][];
  /** Drawn dashed (a p99 beside its p50). */
  dashed?: boolean;
}

/** A line chart of series (x: seconds) with axes, ticks, and dashed vertical marks at `marks` (seconds). */
function chart(title: string, unit: string, series: Series[], marks: { at: number[]; label: string } = { at: [], label: '' }): string {
  const W = 420;
  const H = 240;
  const L = 56;
  const R = 12;
  const T = 28;
  const B = 40;
  const xTicks = ticks(Math.max(0.001, ...series.flatMap((s) => s.points.map((p) => p[0]))));
  const yTicks = ticks(Math.max(0, ...series.flatMap((s) => s.points.map((p) => p[1]))));
  const xMax = xTicks[xTicks.length - 1] as number;
  const yMax = yTicks[yTicks.length - 1] as number;
  const x = (v: number): number => L + (v / xMax) * (W - L - R);
  const y = (v: number): number => H - B - (v / yMax) * (H - T - B);
  const parts: string[] = [`<svg viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="${esc(title)}">`];
  parts.push(`<text x="${L}" y="16" class="t">${esc(title)}</text>`);
  for (const v of yTicks) parts.push(`<line x1="${L}" x2="${W - R}" y1="${y(v)}" y2="${y(v)}" class="g"/>`, `<text x="${L - 6}" y="${y(v) + 4}" class="yl">${shortNum(v)}</text>`);
  for (const xv of xTicks) parts.push(`<text x="${x(xv)}" y="${H - B + 16}" class="xl">${xv}</text>`);
  parts.push(`<text x="${(L + W - R) / 2}" y="${H - 6}" class="xl">seconds</text>`, `<text x="12" y="${(T + H - B) / 2}" class="yl" transform="rotate(-90 12 ${(T + H - B) / 2})">${esc(unit)}</text>`);
  parts.push(`<line x1="${L}" x2="${L}" y1="${T}" y2="${H - B}" class="a"/><line x1="${L}" x2="${W - R}" y1="${H - B}" y2="${H - B}" class="a"/>`);
  for (const m of marks.at) parts.push(`<line x1="${x(m).toFixed(1)}" x2="${x(m).toFixed(1)}" y1="${T}" y2="${H - B}" class="m"><title>${esc(marks.label)} at ${m.toFixed(2)} s</title></line>`);
  if (marks.at.length > 0) parts.push(`<text x="${W - R}" y="16" class="ml">| ${esc(marks.label)}</text>`);
  for (const s of series) {
    if (s.points.length === 0) continue;
    const color = COLORS[s.name] ?? '#555';
    const d = s.points.map((p, i) => `${i === 0 ? 'M' : 'L'}${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(' ');
    parts.push(`<path d="${d}" fill="none" stroke="${color}" stroke-width="2"${s.dashed === true ? ' stroke-dasharray="5 3"' : ''}/>`);
    if (s.dashed !== true) for (const p of s.points) parts.push(`<circle cx="${x(p[0]).toFixed(1)}" cy="${y(p[1]).toFixed(1)}" r="2.5" fill="${color}"/>`);
  }
  parts.push('</svg>');
  return parts.join('');
}

/** Throughput between consecutive samples, in ops/s. */
function rate(timeline: BenchResult['timeline']): [number, number][] {
  const out: [number, number][] = [];
  for (let i = 1; i < timeline.length; i++) {
    const [t0, n0] = timeline[i - 1] as BenchResult['timeline'][number];
    const [t1, n1] = timeline[i] as BenchResult['timeline'][number];
    if (t1 > t0) out.push([t1, (n1 - n0) / (t1 - t0)]);
  }
  return out;
}

/** The moments (seconds) at which an engine's count of finished checkpoints went up. */
function checkpointTimes(timeline: BenchResult['timeline']): number[] {
  const out: number[] = [];
  for (let i = 1; i < timeline.length; i++) {
    const prev = (timeline[i - 1] as BenchResult['timeline'][number])[4];
    const [t, , , , cur] = timeline[i] as BenchResult['timeline'][number];
    if (prev >= 0 && cur > prev) out.push(t);
  }
  return out;
}

/** A table of strings as HTML: the first row is the header, the first column the labels. */
function htmlTable(rows: string[][]): string {
  const [head, ...body] = rows;
  const th = (head ?? []).map((c) => `<th>${esc(c)}</th>`).join('');
  const tr = body.map((r) => `<tr>${r.map((c, i) => (i === 0 ? `<th scope="row">${esc(c)}</th>` : `<td>${esc(c)}</td>`)).join('')}</tr>`).join('\n');
  return `<table><thead><tr>${th}</tr></thead><tbody>\n${tr}\n</tbody></table>`;
}

export function htmlReport(results: BenchResult[], workloads: { name: string; options: BenchOptions }[], machine: string): string {
  const sections: string[] = [];
  for (const { name, options } of workloads) {
    const rs = results.filter((r) => r.workload === name);
    if (rs.length === 0) continue;
    const t = benchTable(rs, name);
    const legend = rs.map((r) => `<span class="k" style="background:${COLORS[r.engine] ?? '#555'}"></span>${esc(r.engine)}`).join(' ');
    const birch = rs.find((r) => r.engine === 'birchdb');
    const marks = { at: birch === undefined ? [] : checkpointTimes(birch.timeline), label: 'birchdb checkpoint' };
    const latency: Series[] = rs.flatMap((r) => [
      { name: r.engine, points: r.timeline.filter((p) => p[5] >= 0).map((p) => [p[0], p[5]] as [number, number]) },
      { name: r.engine, points: r.timeline.filter((p) => p[6] >= 0).map((p) => [p[0], p[6]] as [number, number]), dashed: true },
    ]);
    const hasLatency = latency.some((s) => s.points.length > 0);
    sections.push(`<section><h2>${esc(describeWorkload(name, options))}</h2><p class="legend">${legend}</p><div class="charts">
${chart('throughput', 'ops/s', rs.map((r) => ({ name: r.engine, points: rate(r.timeline) })), marks)}
${hasLatency ? chart('latency per interval: p50 solid, p99 dashed', 'ms', latency, marks) : ''}
${chart('memory (RSS)', 'MiB', rs.map((r) => ({ name: r.engine, points: r.timeline.map((p) => [p[0], p[2] / 1048576] as [number, number]) })))}
${chart('file size', 'MiB', rs.map((r) => ({ name: r.engine, points: r.timeline.map((p) => [p[0], p[3] / 1048576] as [number, number]) })))}
</div>${t === undefined ? '' : htmlTable(t.rows)}${(t?.warnings ?? []).map((w) => `<p class="w">warning: ${esc(w)}</p>`).join('')}</section>`);
  }
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>birch bench report</title><style>
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:1340px}
h1{font-size:20px}h2{font-size:16px;margin-top:28px}pre{background:#f6f6f6;padding:10px;overflow:auto;font-size:12px}
.charts{display:flex;flex-wrap:wrap;gap:8px}svg{background:#fff;border:1px solid #ddd}
.t{font-size:13px;font-weight:600}.g{stroke:#eee}.a{stroke:#888}.yl{font-size:10px;text-anchor:end;fill:#555}.xl{font-size:10px;text-anchor:middle;fill:#555}
.legend{margin:4px 0}.k{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px;vertical-align:-1px}
.m{stroke:#c62828;stroke-dasharray:3 3;stroke-width:1}.ml{font-size:10px;text-anchor:end;fill:#c62828}
table{border-collapse:collapse;margin-top:10px;font-size:12px}th,td{padding:3px 10px;border-bottom:1px solid #eee}td{text-align:right;font-variant-numeric:tabular-nums}th[scope=row]{text-align:left;font-weight:normal;color:#444}.w{color:#b26a00}
</style></head><body><h1>birch bench</h1><p>${esc(machine)}. Each engine ran alone, in its own process and directory, on the same seeded workload with the same durability. Samples every 250 ms.</p>
${sections.join('\n')}
</body></html>
`;
}
