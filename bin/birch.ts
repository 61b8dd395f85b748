#!/usr/bin/env node
// The birch command line: benchmarks and database tools.
import fs from 'node:fs';
import os from 'node:os';
import { Command, InvalidArgumentError, Option } from 'commander';
import { BirchError, Database } from '../engine/index.js';
import { WORKLOADS, runBirchWorkload, type BenchOptions, type BenchResult } from './bench.js';

function positiveInt(name: string): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError(`${name} must be a positive integer`);
    return n;
  };
}

function fmt(n: number, digits = 0): string {
  return n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
}
function mib(bytes: number): string {
  return `${fmt(bytes / 1048576, 1)} MiB`;
}

function printResults(results: BenchResult[]): void {
  const rows: [string, (r: BenchResult) => string][] = [
    ['ops/s', (r) => fmt(r.opsPerSec)],
    ['commit p50', (r) => `${fmt(r.commitP50Ms, 2)} ms`],
    ['commit p99', (r) => `${fmt(r.commitP99Ms, 2)} ms`],
    ['user bytes', (r) => mib(r.userBytes)],
    ['disk bytes written', (r) => (r.diskBytesWritten === null ? 'n/a' : mib(r.diskBytesWritten))],
    ['write amplification', (r) => (r.writeAmplification === null ? 'n/a' : `${fmt(r.writeAmplification, 1)}x`)],
    ['journal compression', (r) => `${fmt(r.compressionRatio, 2)}x`],
    ['pages per commit', (r) => fmt(r.pagesPerCommit, 1)],
    ['write runs per flush', (r) => fmt(r.writeRunsPerFlush, 1)],
    ['final file size', (r) => mib(r.fileBytes)],
    ['peak memory (RSS)', (r) => mib(r.peakRssBytes)],
    ['batches per commit', (r) => (r.batchesPerCommit === undefined ? '' : fmt(r.batchesPerCommit, 1))],
  ];
  const header = ['', ...results.map((r) => `${r.workload} (${r.engine})`)];
  const table = [header, ...rows.map(([label, f]) => [label, ...results.map(f)])];
  const widths = header.map((_, c) => Math.max(...table.map((row) => (row[c] ?? '').length)));
  for (const row of table) console.log(row.map((cell, c) => (c === 0 ? cell.padEnd(widths[c] ?? 0) : cell.padStart(widths[c] ?? 0))).join('  '));
}

const program = new Command();
program.name('birch').description('birchdb: benchmarks and database tools').showHelpAfterError();

program
  .command('bench')
  .description('run write benchmarks on a temporary database and print what was measured')
  .argument('[workloads...]', `workloads to run: ${Object.keys(WORKLOADS).join(', ')}`, ['fillseq', 'fillrandom'])
  .option('--txns <n>', 'transactions per workload', positiveInt('--txns'))
  .option('--callers <n>', 'concurrent async callers (concurrent workload)', positiveInt('--callers'))
  .option('--batch <n>', 'items per transaction', positiveInt('--batch'))
  .option('--key-size <bytes>', 'key size', positiveInt('--key-size'))
  .option('--value-size <bytes>', 'value size', positiveInt('--value-size'))
  .option('--cache <bytes>', 'page cache size', positiveInt('--cache'))
  .addOption(new Option('--no-sync', 'do not fdatasync each commit'))
  .option('--seed <n>', 'random seed', positiveInt('--seed'), 42)
  .option('--dir <path>', 'run in this directory (kept afterwards) instead of a temporary one')
  .option('--json <file>', 'also write every figure to this JSON file')
  .action(async (workloads: string[], opts: { callers?: number; txns?: number; batch?: number; keySize?: number; valueSize?: number; cache?: number; sync: boolean; seed: number; dir?: string; json?: string }) => {
    for (const w of workloads) if (WORKLOADS[w] === undefined) program.error(`unknown workload "${w}"; choose from ${Object.keys(WORKLOADS).join(', ')}`);
    console.log(`machine: ${os.cpus().length} x ${os.cpus()[0]?.model ?? 'cpu'}, ${fmt(os.totalmem() / 2 ** 30, 0)} GiB, ${os.platform()} ${os.release()}, node ${process.version}`);
    const results: BenchResult[] = [];
    for (const name of workloads) {
      const d = (WORKLOADS[name] as (typeof WORKLOADS)[string]).defaults;
      const o: BenchOptions = {
        callers: opts.callers ?? d.callers ?? 64,
        txns: opts.txns ?? d.txns ?? 1000,
        batch: opts.batch ?? d.batch ?? 100,
        keySize: opts.keySize ?? d.keySize ?? 16,
        valueSize: opts.valueSize ?? d.valueSize ?? 100,
        sync: opts.sync,
        seed: opts.seed,
        ...(opts.dir !== undefined ? { dir: `${opts.dir}/${name}` } : {}),
        ...(opts.cache !== undefined ? { cacheSize: opts.cache } : {}),
      };
      const shape = WORKLOADS[name]?.concurrent === true ? `${o.callers} callers, ${fmt(o.txns * o.batch)} single-op puts` : `${fmt(o.txns)} txns x ${o.batch} items`;
      console.log(`${name}: ${shape}, ${o.keySize} B keys, ${o.valueSize} B values, sync ${o.sync ? 'on' : 'off'}, seed ${o.seed}`);
      results.push(await runBirchWorkload(name, o, (done) => process.stderr.isTTY && process.stderr.write(`\r  ${name}: ${done}/${o.txns} txns`)));
      if (process.stderr.isTTY) process.stderr.write('\n');
    }
    printResults(results);
    if (opts.json !== undefined) fs.writeFileSync(opts.json, JSON.stringify(results, null, 2));
  });

function openExisting(dir: string): Database {
  if (!fs.existsSync(dir) || !fs.existsSync(`${dir}/data.birch`)) {
    console.error(`birch: ${dir} is not a birchdb database directory`);
    process.exit(2);
  }
  try {
    return Database.open(dir);
  } catch (err) {
    console.error(`birch: cannot open ${dir}: ${err instanceof BirchError ? `${err.code}: ${err.message}` : String(err)}`);
    process.exit(2);
  }
}

program
  .command('check')
  .description('verify every page, key order and the free list; exit 0 only if clean')
  .argument('<dir>', 'database directory')
  .action((dir: string) => {
    const db = openExisting(dir);
    const r = db.check();
    db.close();
    console.log(`txn ${r.txnId}, ${r.pageCount} pages: ${r.pages.reachable} in use (${r.pages.leaf} leaf, ${r.pages.branch} branch, ${r.pages.overflow} overflow, ${r.pages.freeList} free-list), ${r.pages.free} free, ${r.trees} trees`);
    if (r.ok) console.log('clean');
    else {
      for (const e of r.errors) console.log(`error: ${e}`);
      process.exitCode = 1;
    }
  });

program
  .command('stat')
  .description('print the database statistics as JSON')
  .argument('<dir>', 'database directory')
  .action((dir: string) => {
    const db = openExisting(dir);
    console.log(JSON.stringify(db.stats(), null, 2));
    db.close();
  });

await program.parseAsync();
