// The parent of `birch bench`: runs each workload on each engine in a child process of its own,
// in a fresh directory, one at a time (so engines never compete for the machine), then prints
// one table per workload with every engine's figures and its ratio to birchdb.
import { fork, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import cliProgress from 'cli-progress';
import type { ChildMessage, ChildPlan } from './child.js';
import type { EngineName } from './engines.js';
import type { BenchResult } from './measure.js';
import { RANGES_PER_TXN, READ_KINDS, SCAN_PASSES, WORKLOADS, WRITES_PER_KEY, type BenchOptions, type WorkloadKind } from './workloads.js';

const CHILD = path.join(path.dirname(fileURLToPath(import.meta.url)), 'child.js');

export interface RunPlan {
  workloads: { name: string; options: BenchOptions }[];
  engines: EngineName[];
  /** Keep databases under this directory instead of a temporary one. */
  dir?: string;
  progress: boolean;
  log: (line: string) => void;
}

export interface RunOutcome {
  results: BenchResult[];
  /** Why engines were left out, and which peers are not installed. */
  skipped: string[];
  missing: EngineName[];
}

/** The engine process running now, if any: Ctrl-C stops it before the temporary databases go. */
let running: ChildProcess | undefined;

function runChild(plan: ChildPlan, onProgress: (done: number, total: number) => void): Promise<ChildMessage> {
  return new Promise((resolve, reject) => {
    const child = fork(CHILD, [JSON.stringify(plan)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    running = child;
    let outcome: ChildMessage | undefined;
    child.on('message', (m: ChildMessage) => {
      if (m.kind === 'progress') onProgress(m.done, m.total);
      else outcome = m;
    });
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      if (running === child) running = undefined;
      if (outcome !== undefined) resolve(outcome);
      else reject(new Error(`the ${plan.engine} ${plan.workload} run exited (${signal ?? code}) without a result`));
    });
  });
}

export async function runBench(plan: RunPlan): Promise<RunOutcome> {
  const base = plan.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'birch-bench-'));
  const results: BenchResult[] = [];
  const skipped = new Set<string>();
  const missing = new Set<EngineName>();
  // Ctrl-C (or a kill): stop the engine's process, then remove the temporary databases, which a
  // run of a few seconds already makes hundreds of MiB of; a --dir of the user's is left as it is.
  const interrupt = (signal: NodeJS.Signals): void => {
    const finish = (): void => {
      if (plan.dir === undefined) fs.rmSync(base, { recursive: true, force: true });
      process.stderr.write(`\nbench interrupted (${signal})${plan.dir === undefined ? '; its temporary databases were removed' : ''}\n`);
      process.exit(signal === 'SIGINT' ? 130 : 143);
    };
    const child = running;
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) finish();
    else {
      child.once('exit', finish);
      child.kill('SIGKILL');
    }
  };
  process.once('SIGINT', interrupt);
  process.once('SIGTERM', interrupt);
  try {
    for (const { name, options } of plan.workloads) {
      for (const engine of plan.engines) {
        if (missing.has(engine)) continue;
        const dir = path.join(base, `${name}-${engine}`);
        fs.rmSync(dir, { recursive: true, force: true });
        const bar = plan.progress ? new cliProgress.SingleBar({ format: `  ${name} ${engine.padEnd(7)} [{bar}] {percentage}% {value}/{total} ops`, hideCursor: true, clearOnComplete: true }, cliProgress.Presets.shades_classic) : undefined;
        bar?.start(1, 0);
        try {
          const m = await runChild({ engine, workload: name, options, dir }, (done, total) => {
            bar?.setTotal(total);
            bar?.update(done);
          });
          if (m.kind === 'result') results.push(m.result);
          else if (m.kind === 'missing') {
            missing.add(engine);
            skipped.add(m.why);
            // Made for this run only (removed above before it started): a skipped peer leaves no folder, in --dir either.
            fs.rmSync(dir, { recursive: true, force: true });
          } else if (m.kind === 'error') throw new Error(`${engine} ${name}: ${m.message}`);
        } finally {
          bar?.stop();
          if (plan.dir === undefined) fs.rmSync(dir, { recursive: true, force: true });
        }
      }
    }
  } finally {
    process.removeListener('SIGINT', interrupt);
    process.removeListener('SIGTERM', interrupt);
    if (plan.dir === undefined) fs.rmSync(base, { recursive: true, force: true });
  }
  return { results, skipped: [...skipped], missing: [...missing] };
}

export function fmt(n: number, digits = 0): string {
  return n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
}
function mib(bytes: number): string {
  return `${fmt(bytes / 1048576, 1)} MiB`;
}
function ms(x: number): string {
  return x < 0.1 ? `${fmt(x * 1000, 1)} us` : `${fmt(x, 2)} ms`;
}

export function describeWorkload(name: string, o: BenchOptions): string {
  const w = WORKLOADS[name];
  if (w?.kind === 'versions') {
    const stores = o.stores.map((s) => `${s.name} (keys ${s.keyMean}+-${s.keySpread} B, values ${s.valueMean}+-${s.valueSpread} B, ${s.changes} changes, ${Math.round(s.deleteFraction * 100)}% deletes)`).join('; ');
    return `${name}: ${fmt(o.txns)} versions over ${o.stores.length} stores: ${stores}; sync ${o.sync ? 'on' : 'off'}, seed ${o.seed}`;
  }
  const keys = fmt(o.txns * o.batch);
  const warm = 'files in the OS page cache';
  const shapes: Partial<Record<WorkloadKind, string>> = {
    concurrent: `${o.callers} callers, ${keys} single-op puts`,
    readrandom: `${keys} random reads of ${keys} keys after a first pass of the same reads (its rate apart), ${warm}`,
    readseq: `${SCAN_PASSES} ordered scans of ${keys} keys, ${warm}`,
    scan: `${fmt(o.txns * RANGES_PER_TXN)} ranges of ${o.batch} entries from random keys of ${keys}, ${warm}`,
    readwhilewriting: `${o.callers} callers, ${fmt(Math.round(o.txns * o.batch * WRITES_PER_KEY))} single-op overwrites of ${keys} keys while one reader reads random keys, ${warm}`,
  };
  const shape = (w === undefined ? undefined : shapes[w.kind]) ?? `${fmt(o.txns)} txns x ${o.batch} ops`;
  const extra = name === 'streams' ? `, ${o.streams} streams` : name === 'fillseq' && o.desc ? ', descending' : '';
  const limit = o.memoryLimit === undefined ? '' : `, birchdb memoryLimit ${fmt(Math.round(o.memoryLimit / 2 ** 20))} MiB`;
  const keySizes = o.keySizeRange === undefined ? `${o.keySize} B` : `${o.keySizeRange[0]}-${o.keySizeRange[1]} B`;
  const valueSizes = o.valueSizeRange === undefined ? `${o.valueSize} B` : `${o.valueSizeRange[0]}-${o.valueSizeRange[1]} B`;
  return `${name}: ${shape}${extra}, ${keySizes} keys, ${valueSizes} values, sync ${o.sync ? 'on' : 'off'}${limit}, seed ${o.seed}`;
}

/** A table row: its label and each engine's cell. */
type Row = [string, (r: BenchResult) => string];

/** One table per workload: a column per engine, and each engine's ops/s as a ratio to birchdb's. */
/** The text of every workload's table, with its warnings, as `birch bench` prints them. */
export function formatTables(results: BenchResult[], workloads: { name: string; options: BenchOptions }[]): string[] {
  const lines: string[] = [];
  for (const { name, options } of workloads) {
    const t = benchTable(results, name);
    if (t === undefined) continue;
    const widths = (t.rows[0] as string[]).map((_, c) => Math.max(...t.rows.map((row) => (row[c] ?? '').length)));
    lines.push(describeWorkload(name, options));
    for (const row of t.rows) lines.push(row.map((cell, c) => (c === 0 ? cell.padEnd(widths[c] ?? 0) : cell.padStart(widths[c] ?? 0))).join('  '));
    for (const w of t.warnings) lines.push(`warning: ${w}`);
    lines.push('');
  }
  return lines;
}

/** One workload's table: a header row (engines) and a row per figure; and what the reader should be warned of. */
export function benchTable(results: BenchResult[], name: string): { rows: string[][]; warnings: string[] } | undefined {
  const rs = results.filter((r) => r.workload === name);
  if (rs.length === 0) return undefined;
  const birch = rs.find((r) => r.engine === 'birchdb');
  const kind = WORKLOADS[name]?.kind;
  const rww = kind === 'readwhilewriting';
  const reads = kind !== undefined && READ_KINDS.includes(kind);
  const latencyOf = kind === 'readrandom' || kind === 'concurrent' ? 'op' : kind === 'readseq' ? 'scan' : kind === 'scan' ? 'range' : rww ? 'read' : kind === 'versions' ? 'version' : 'txn';
  const extra = (key: string, digits: number, suffix = ''): ((r: BenchResult) => string) => (r) => (r.extra[key] === undefined ? 'n/a' : `${fmt(r.extra[key] as number, digits)}${suffix}`);
  const writes = (f: (x: NonNullable<BenchResult['writes']>) => string): ((r: BenchResult) => string) => (r) => (r.writes === undefined ? 'n/a' : f(r.writes));
  const rows: Row[] = [
    ['ops/s', (r) => fmt(r.opsPerSec)],
    ['  vs birchdb', (r) => (birch === undefined ? '' : `${fmt(r.opsPerSec / birch.opsPerSec, 2)}x`)],
    [`latency p50 (per ${latencyOf})`, (r) => ms(r.p50Ms)],
    [`latency p99 (per ${latencyOf})`, (r) => ms(r.p99Ms)],
    ...(kind === 'readrandom'
      ? ([
          ['first pass (untimed), ops/s', extra('firstPassOpsPerSec', 0)],
          ['  vs birchdb', (r) => (birch?.extra.firstPassOpsPerSec === undefined || r.extra.firstPassOpsPerSec === undefined ? '' : `${fmt(r.extra.firstPassOpsPerSec / birch.extra.firstPassOpsPerSec, 2)}x`)],
        ] satisfies Row[])
      : []),
    ...(rww
      ? ([
          ['writes/s', writes((x) => fmt(x.opsPerSec))],
          ['  vs birchdb', writes((x) => (birch?.writes === undefined ? '' : `${fmt(x.opsPerSec / birch.writes.opsPerSec, 2)}x`))],
          ['latency p50 (per put)', writes((x) => ms(x.p50Ms))],
          ['latency p99 (per put)', writes((x) => ms(x.p99Ms))],
        ] satisfies Row[])
      : []),
    ['user bytes written', (r) => (r.userBytes === 0 ? '-' : mib(r.userBytes))],
    ['disk bytes written', (r) => (r.diskBytesWritten === null ? 'n/a' : mib(r.diskBytesWritten))],
    ['write amplification', (r) => (r.writeAmplification === null ? '-' : `${fmt(r.writeAmplification, 1)}x`)],
    ['batches per commit', extra('batchesPerCommit', 1)],
    ['checkpoints', extra('checkpoints', 0)],
    ['  avg duration', extra('checkpointMs', 0, ' ms')],
    ['  pages written', extra('pagesPerCheckpoint', 0)],
    ['  write runs', extra('writeRunsPerCheckpoint', 1)],
    [rww ? 'put p99 during checkpoints' : 'p99 during checkpoints', (r) => (r.extra.p99DuringCheckpointMs === undefined ? 'n/a' : ms(r.extra.p99DuringCheckpointMs))],
    ...(rww ? ([['read p99 during checkpoints', (r) => (r.extra.readP99DuringCheckpointMs === undefined ? 'n/a' : ms(r.extra.readP99DuringCheckpointMs))]] satisfies Row[]) : []),
    ...(reads ? ([['page cache hit ratio', (r) => (r.extra.cacheHitRatio === undefined ? 'n/a' : `${fmt(r.extra.cacheHitRatio * 100, 1)}%`)]] satisfies Row[]) : []),
    ['buffer at the end', extra('bufferMiB', 1, ' MiB')],
    ['recovery after a crash', extra('recoveryMs', 1, ' ms')],
    ['final file size', (r) => mib(r.fileBytes)],
    ['peak memory (RSS)', (r) => mib(r.peakRssBytes)],
  ];
  const header = ['', ...rs.map((r) => r.engine)];
  const table = [header, ...rows.map(([label, f]) => [label, ...rs.map(f)])];
  const warnings: string[] = [];
  // A write workload that ended before birchdb's first checkpoint measured a buffer filling up.
  if (!reads && birch !== undefined && birch.extra.checkpoints === 0 && (birch.userBytes ?? 0) > 0) {
    warnings.push('birchdb ran no checkpoint in this run: its figures are a write buffer filling up, not steady state; use more --txns for a run that is');
  }
  return { rows: table, warnings };
}
