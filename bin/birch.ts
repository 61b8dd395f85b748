#!/usr/bin/env node
// The birch command line: benchmarks and database tools.
import fs from 'node:fs';
import os from 'node:os';
import { Command, InvalidArgumentError } from 'commander';
import { BirchError, Database } from '../engine/index.js';
import { DEFAULTS, WORKLOADS, type BenchOptions, type Workload } from './bench/workloads.js';
import { formatTables, runBench } from './bench/run.js';
import type { EngineName } from './bench/engines.js';

function positiveInt(name: string): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError(`${name} must be a positive integer`);
    return n;
  };
}

const PEERS: EngineName[] = ['lmdb', 'level', 'sqlite'];

function engineList(v: string): EngineName[] {
  const names = v.split(',').map((x) => x.trim()).filter((x) => x !== '');
  for (const n of names) if (!(PEERS as string[]).includes(n)) throw new InvalidArgumentError(`unknown engine "${n}"; choose from ${PEERS.join(', ')}`);
  return names as EngineName[];
}

interface BenchFlags {
  txns?: number;
  batch?: number;
  keySize?: number;
  valueSize?: number;
  callers?: number;
  streams?: number;
  cache?: number;
  desc?: boolean;
  sync: boolean;
  seed: number;
  dir?: string;
  json?: string;
  compare?: EngineName[];
}

const program = new Command();
program.name('birch').description('birchdb: benchmarks and database tools').showHelpAfterError();

program
  .command('bench')
  .description('run workloads on birchdb and, side by side, on the engines you would otherwise pick')
  .argument('[workloads...]', `workloads to run: ${Object.keys(WORKLOADS).join(', ')}`, ['fillseq', 'fillrandom'])
  .option('--compare <engines>', `peers to run too, comma-separated (default: every installed one of ${PEERS.join(', ')})`, engineList)
  .option('--txns <n>', 'transactions (or, for reads, keys / batch)', positiveInt('--txns'))
  .option('--batch <n>', 'operations per transaction', positiveInt('--batch'))
  .option('--key-size <bytes>', 'key size', positiveInt('--key-size'))
  .option('--value-size <bytes>', 'value size', positiveInt('--value-size'))
  .option('--callers <n>', 'concurrent async callers (concurrent)', positiveInt('--callers'))
  .option('--streams <n>', 'interleaved streams (streams)', positiveInt('--streams'))
  .option('--desc', 'descending keys (fillseq)')
  .option('--cache <bytes>', 'page cache size, for engines that have one', positiveInt('--cache'))
  .option('--sync', 'make every commit durable before it returns (the default)', true)
  .option('--no-sync', 'do not sync commits (every engine alike)')
  .option('--seed <n>', 'random seed: same keys and values for every engine', positiveInt('--seed'), 42)
  .option('--dir <path>', 'keep the databases under this directory instead of a temporary one')
  .option('--json <file>', 'also write every figure, with samples over time, to this JSON file')
  .action(async (workloads: string[], flags: BenchFlags) => {
    for (const w of workloads) if (WORKLOADS[w] === undefined) program.error(`birch: unknown workload "${w}"; choose from ${Object.keys(WORKLOADS).join(', ')}`);
    const plans = workloads.map((name) => {
      const d = { ...DEFAULTS, ...(WORKLOADS[name] as Workload).defaults };
      const options: BenchOptions = {
        txns: flags.txns ?? d.txns,
        batch: flags.batch ?? d.batch,
        keySize: flags.keySize ?? d.keySize,
        valueSize: flags.valueSize ?? d.valueSize,
        callers: flags.callers ?? d.callers,
        streams: flags.streams ?? d.streams,
        desc: flags.desc ?? d.desc,
        sync: flags.sync,
        seed: flags.seed,
        cacheSize: flags.cache ?? d.cacheSize,
      };
      return { name, options };
    });
    console.log(`machine: ${os.cpus().length} x ${os.cpus()[0]?.model ?? 'cpu'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, ${os.platform()} ${os.release()}, node ${process.version}`);
    const engines: EngineName[] = ['birchdb', ...(flags.compare ?? PEERS)];
    const { results, skipped } = await runBench({ workloads: plans, engines, ...(flags.dir !== undefined ? { dir: flags.dir } : {}), progress: process.stderr.isTTY === true, log: (l) => console.log(l) });
    for (const s of skipped) console.log(`skipped: ${s}`);
    console.log('');
    for (const line of formatTables(results, plans)) console.log(line);
    if (flags.json !== undefined) fs.writeFileSync(flags.json, JSON.stringify({ machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model, memBytes: os.totalmem(), release: os.release(), node: process.version }, workloads: plans, results }, null, 2));
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
