#!/usr/bin/env node
// The birch command line: benchmarks and database tools.
import fs from 'node:fs';
import os from 'node:os';
import { Command, InvalidArgumentError } from 'commander';
import cliProgress from 'cli-progress';
import path from 'node:path';
import readline from 'node:readline';
import { BirchError, open, type BackupProgress, type Birch, type ExportProgress } from '../api/index.js';
import { DUMP_HEADER, decodeTreeName, dumpLine, parseDumpLine, type DumpEntry } from './dump-format.js';
import { inspectJournal } from './inspect.js';
import { DEFAULTS, RANGES_PER_TXN, READ_KINDS, WORKLOADS, WRITES_PER_KEY, parseStores, type BenchOptions, type StoreSpec, type Workload } from './bench/workloads.js';
import { formatTables, runBench } from './bench/run.js';
import { htmlReport } from './bench/report.js';
import { installCommand, type EngineName } from './bench/engines.js';
import { currentRuntime } from '../api/runtime.js';

function positiveInt(name: string): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError(`${name} must be a positive integer`);
    return n;
  };
}

const PEERS: EngineName[] = ['lmdb', 'level', 'sqlite'];
/** Not a peer, never run unless named: a bare write plus fdatasync per transaction (engines.ts floor()). */
const FLOOR: EngineName = 'floor';
/** Not a peer, never run unless named: birchdb through birchdb/level (abstract-level's interface). */
const BIRCH_LEVEL: EngineName = 'birchlevel';

function engineList(v: string): EngineName[] {
  const names = v.split(',').map((x) => x.trim()).filter((x) => x !== '');
  for (const n of names) if (!(PEERS as string[]).includes(n) && n !== FLOOR && n !== BIRCH_LEVEL) throw new InvalidArgumentError(`unknown engine "${n}"; choose from ${[...PEERS, FLOOR, BIRCH_LEVEL].join(', ')}`);
  return names as EngineName[];
}

interface BenchFlags {
  txns?: number;
  keys?: number;
  batch?: number;
  keySize?: number;
  valueSize?: number;
  callers?: number;
  streams?: number;
  cache?: number;
  memoryLimit?: number;
  desc?: boolean;
  stores?: StoreSpec[];
  sync: boolean;
  seed: number;
  dir?: string;
  json?: string;
  report?: string;
  compare?: EngineName[];
}

function fmtInt(n: number): string {
  return n.toLocaleString('en-US');
}

/**
 * A default for the help: the common one, then the workloads that differ ("10,000; readseq 1,000").
 * `show` maps a stored value to what the option means (reads store keys / batch).
 */
function defaultsOf(field: 'txns' | 'batch' | 'valueSize' | 'callers', applies: (w: Workload) => boolean, show: (n: number) => number = (n) => n): string {
  const ws = Object.values(WORKLOADS).filter(applies);
  const values = ws.map((w) => ({ name: w.name, v: show((w.defaults[field] ?? DEFAULTS[field]) as number) }));
  const counts = new Map<number, number>();
  for (const { v } of values) counts.set(v, (counts.get(v) ?? 0) + 1);
  const base = show(DEFAULTS[field] as number);
  // The most common value; on a tie, the general default.
  const common = [...counts].sort((a, b) => b[1] - a[1] || Number(b[0] === base) - Number(a[0] === base))[0]?.[0] ?? base;
  const others = values.filter(({ v }) => v !== common).map(({ name, v }) => `${name} ${fmtInt(v)}`);
  return [fmtInt(common), ...others].join('; ');
}

/** The version in birchdb's package.json (two levels above dist/bin/birch.js, and above bin/ in the sources). */
function packageVersion(): string {
  for (const rel of ['../../package.json', '../package.json']) {
    const p = new URL(rel, import.meta.url);
    try {
      const pkg = JSON.parse(fs.readFileSync(p, 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'birchdb' && typeof pkg.version === 'string') return pkg.version;
    } catch {
      // not there: try the next
    }
  }
  return 'unknown';
}

const program = new Command();
program.name('birch').description('birchdb: benchmarks and database tools').version(packageVersion(), '-V, --version', "print birchdb's version").showHelpAfterError();

program
  .command('bench')
  .description('run workloads on birchdb and, side by side, on the engines you would otherwise pick')
  .argument('[workloads...]', `workloads to run: ${Object.keys(WORKLOADS).join(', ')}`, ['fillseq', 'fillrandom'])
  .option('--compare <engines>', `peers to run too, comma-separated (default: every installed one of ${PEERS.join(', ')}); ${FLOOR}: a bare write plus fdatasync per transaction, the bound a durable commit cannot beat (write workloads only); ${BIRCH_LEVEL}: birchdb through birchdb/level, driven as classic-level is`, engineList)
  .option('--txns <n>', `transactions of the write workloads (versions: versions) (default: ${defaultsOf('txns', (w) => !READ_KINDS.includes(w.kind))})`, positiveInt('--txns'))
  .option('--keys <n>', `keys of the read workloads (--txns works too, as keys / batch; read in batches of --batch; scan100 reads ${RANGES_PER_TXN} ranges per batch, readwhilewriting puts ${WRITES_PER_KEY} per key) (default: ${defaultsOf('txns', (w) => READ_KINDS.includes(w.kind), (n) => n * DEFAULTS.batch)})`, positiveInt('--keys'))
  .option('--batch <n>', `operations per transaction (scan100: also entries per range) (default: ${defaultsOf('batch', (w) => w.kind !== 'versions')})`, positiveInt('--batch'))
  .option('--key-size <bytes>', `key size (default: ${fmtInt(DEFAULTS.keySize)}; fillbatch 8-64, drawn per key)`, positiveInt('--key-size'))
  .option('--value-size <bytes>', `value size (default: ${defaultsOf('valueSize', (w) => w.kind !== 'versions' && w.defaults.valueSizeRange === undefined)}; fillbatch 20-200, drawn per value)`, positiveInt('--value-size'))
  .option('--callers <n>', `concurrent async callers (concurrent, puts, readwhilewriting) (default: ${defaultsOf('callers', (w) => w.kind === 'concurrent' || w.kind === 'readwhilewriting')})`, positiveInt('--callers'))
  .option('--streams <n>', `interleaved streams (streams) (default: ${fmtInt(DEFAULTS.streams)})`, positiveInt('--streams'))
  .option('--desc', 'descending keys (fillseq)')
  .option('--stores <spec>', 'versions: name:keyMean:keySpread:valueMean:valueSpread:changes:deleteFraction,... (default: accounts, events, index)', (v: string) => {
    try {
      return parseStores(v);
    } catch (err) {
      throw new InvalidArgumentError((err as Error).message);
    }
  })
  .option('--cache <bytes>', 'page cache size, for engines that have one (default: birchdb its own, a share of memory taken as pages are read; LevelDB and SQLite 64 MiB)', positiveInt('--cache'))
  .option('--memory-limit <bytes>', "birchdb's memoryLimit: one bound its cache and write path follow (default: none)", positiveInt('--memory-limit'))
  .option('--sync', 'make every commit durable before it returns (the default)', true)
  .option('--no-sync', 'do not sync commits (every engine alike)')
  .option('--seed <n>', 'random seed: same keys and values for every engine', positiveInt('--seed'), 42)
  .option('--dir <path>', 'keep the databases under this directory instead of a temporary one')
  .option('--json <file>', 'also write every figure, with samples over time, to this JSON file')
  .option('--report <file>', 'also write an HTML page with the tables and plots over time (ops/s, memory, file size)')
  .action(async (workloads: string[], flags: BenchFlags) => {
    for (const w of workloads) if (WORKLOADS[w] === undefined) program.error(`birch: unknown workload "${w}"; choose from ${Object.keys(WORKLOADS).join(', ')}`);
    const plans = workloads.map((name) => {
      const w = WORKLOADS[name] as Workload;
      const d = { ...DEFAULTS, ...w.defaults };
      const batch = flags.batch ?? d.batch;
      const reads = READ_KINDS.includes(w.kind);
      const options: BenchOptions = {
        // Reads count keys (--keys), read in batches: their "transactions" are keys / batch.
        txns: reads ? (flags.keys !== undefined ? Math.max(1, Math.ceil(flags.keys / batch)) : flags.txns ?? d.txns) : flags.txns ?? d.txns,
        batch,
        keySize: flags.keySize ?? d.keySize,
        valueSize: flags.valueSize ?? d.valueSize,
        callers: flags.callers ?? d.callers,
        streams: flags.streams ?? d.streams,
        desc: flags.desc ?? d.desc,
        sync: flags.sync,
        seed: flags.seed,
        cacheSize: flags.cache ?? d.cacheSize,
        ...(flags.memoryLimit === undefined ? {} : { memoryLimit: flags.memoryLimit }),
        stores: flags.stores ?? d.stores,
        // A size given on the command line replaces the workload's range (fillbatch).
        ...(flags.keySize === undefined && d.keySizeRange !== undefined ? { keySizeRange: d.keySizeRange } : {}),
        ...(flags.valueSize === undefined && d.valueSizeRange !== undefined ? { valueSizeRange: d.valueSizeRange } : {}),
      };
      return { name, options };
    });
    const machine = `machine: ${os.cpus().length} x ${os.cpus()[0]?.model ?? 'cpu'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, ${os.platform()} ${os.release()}, ${runtimeName()}`;
    console.log(machine);
    const engines: EngineName[] = ['birchdb', ...(flags.compare ?? PEERS)];
    const { results, skipped, missing } = await runBench({ workloads: plans, engines, ...(flags.dir !== undefined ? { dir: flags.dir } : {}), progress: process.stderr.isTTY === true, log: (l) => console.log(l) });
    for (const s of skipped) console.log(`skipped: ${s}`);
    if (missing.length > 0) console.log(`to compare with ${missing.join(', ')} too, install ${missing.length === 1 ? 'it' : 'them'}: ${installCommand(missing)}`);
    console.log('');
    for (const line of formatTables(results, plans)) console.log(line);
    if (flags.report !== undefined) fs.writeFileSync(flags.report, htmlReport(results, plans, machine));
    if (flags.json !== undefined) fs.writeFileSync(flags.json, JSON.stringify({ machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model, memBytes: os.totalmem(), release: os.release(), node: process.version }, workloads: plans, results }, null, 2));
  });

/** The runtime as the machine line names it: Bun and Deno report a Node version of their own in process.version. */
function runtimeName(): string {
  const rt = currentRuntime();
  return rt.name === 'node' ? `node ${process.version}` : `${rt.name} ${rt.version}`;
}

/** Exit status for a database that cannot be used at all: missing, locked or unreadable. */
const EXIT_UNUSABLE = 2;

function fail(message: string): never {
  console.error(`birch: ${message}`);
  process.exit(EXIT_UNUSABLE);
}

function describeError(err: unknown): string {
  return err instanceof BirchError ? `${err.code}: ${err.message}` : err instanceof Error ? err.message : String(err);
}

function assertDatabaseDir(dir: string): void {
  if (!fs.existsSync(dir)) fail(`${dir} does not exist`);
  if (!fs.statSync(dir).isDirectory()) fail(`${dir} is not a directory`);
  if (!fs.existsSync(path.join(dir, 'data.birch'))) fail(`${dir} is not a birchdb database (no data.birch)`);
}

/** Opens `dir`, runs `f`, closes; a failure of `f` closes too and exits with "<what> failed: ...". */
async function withDatabase<T>(dir: string, what: string, f: (db: Birch) => Promise<T>): Promise<T> {
  const db = await openExisting(dir);
  let out: T;
  try {
    out = await f(db);
  } catch (err) {
    await db.close().catch(() => undefined);
    fail(`${what} failed: ${describeError(err)}`);
  }
  await db.close();
  return out;
}

async function openExisting(dir: string): Promise<Birch> {
  assertDatabaseDir(dir);
  try {
    return await open(dir);
  } catch (err) {
    fail(`cannot open ${dir}: ${describeError(err)}`);
  }
}

program
  .command('check')
  .description('verify every page, key order and the free list (after checkpointing the journal); exit 0 only if clean')
  .argument('<dir>', 'database directory')
  .action(async (dir: string) => {
    const db = await openExisting(dir);
    let r;
    try {
      // Into the trees first, so that the check covers every batch the database holds.
      await db.checkpoint();
      r = db.check();
    } finally {
      await db.close();
    }
    console.log(`checkpoint ${r.checkpointId} (batches up to ${r.seq}), ${r.pageCount} pages: ${r.pages.reachable} in use (${r.pages.leaf} leaf, ${r.pages.branch} branch, ${r.pages.overflow} overflow, ${r.pages.freeList} free-list), ${r.pages.free} free, ${r.trees} trees`);
    if (r.ok) console.log('clean');
    else {
      for (const e of r.errors) console.log(`error: ${e}`);
      console.log(`${r.errors.length} problem(s) found`);
      process.exitCode = 1;
    }
  });

program
  .command('backup')
  .description('copy a database into a new directory, compact (every tree in fresh, full pages; or page for page with --no-compact) and checked; restore by opening the copy')
  .argument('<dir>', 'database directory')
  .argument('<target>', 'the backup directory to create (must not exist)')
  .option('--no-compact', 'copy the data file page for page as of a checkpoint (faster, free pages kept) instead of rebuilding every tree')
  .action(async (dir: string, target: string, opts: { compact: boolean }) => {
    if (fs.existsSync(target)) fail(`the backup target ${target} already exists; choose a new directory`);
    const bar = process.stderr.isTTY === true ? new cliProgress.SingleBar({ format: '  backup [{bar}] {percentage}% {value}/{total} entries {phase}', hideCursor: true, clearOnComplete: true, stream: process.stderr }, cliProgress.Presets.shades_classic) : undefined;
    let started = false;
    const onProgress = (p: BackupProgress): void => {
      if (bar === undefined) return;
      const total = Math.max(p.estimatedEntries, p.entries);
      if (!started) {
        bar.start(total, p.entries, { phase: p.phase });
        started = true;
      }
      bar.setTotal(total);
      bar.update(p.entries, { phase: p.phase });
    };
    const r = await withDatabase(dir, 'backup', (db) => db.backup(target, { compact: opts.compact, onProgress }).finally(() => bar?.stop()));
    console.log(`backup of batch ${r.seq}: ${r.entries} entries in ${r.trees + 1} trees, ${(r.bytes / 2 ** 20).toFixed(1)} MiB, checked, in ${(r.ms / 1000).toFixed(1)} s: ${r.dir}`);
  });

program
  .command('compact')
  .description('give free space back: move the trees into the holes and cut the file (what close() also does when much is free)')
  .argument('<dir>', 'database directory')
  .action(async (dir: string) => {
    const r = await withDatabase(dir, 'compact', (db) => db.compact());
    console.log(`${(r.bytesBefore / 2 ** 20).toFixed(1)} MiB -> ${(r.bytesAfter / 2 ** 20).toFixed(1)} MiB in ${r.ms.toFixed(0)} ms (${r.freePages} free pages left inside the file)`);
  });

program
  .command('export')
  .description('write one snapshot as deterministic LZ4 chunks plus a checksummed manifest into a new directory, cut by reader threads in parallel (FORMAT.md, "Exports")')
  .argument('<dir>', 'database directory')
  .argument('<target>', 'the export directory to create (must not exist)')
  .option('--chunk-bytes <n>', 'mean bytes of entries per chunk, before compression (default 8 MiB)', positiveInt('--chunk-bytes'))
  .option('--threads <n>', 'reader threads cutting chunks (default: cores, at most 4)', positiveInt('--threads'))
  .action(async (dir: string, target: string, opts: { chunkBytes?: number; threads?: number }) => {
    if (fs.existsSync(target)) fail(`the export target ${target} already exists; choose a new directory`);
    const bar = process.stderr.isTTY === true ? new cliProgress.SingleBar({ format: '  export [{bar}] {percentage}% {value}/{total} entries, {chunks} chunks', hideCursor: true, clearOnComplete: true, stream: process.stderr }, cliProgress.Presets.shades_classic) : undefined;
    let started = false;
    const onProgress = (p: ExportProgress): void => {
      if (bar === undefined) return;
      if (!started) {
        bar.start(p.totalEntries, p.entries, { chunks: p.chunks });
        started = true;
      }
      bar.update(p.entries, { chunks: p.chunks });
    };
    const r = await withDatabase(dir, 'export', (db) =>
      db.export(target, { ...(opts.chunkBytes === undefined ? {} : { chunkBytes: opts.chunkBytes }), ...(opts.threads === undefined ? {} : { threads: opts.threads }), onProgress }).finally(() => bar?.stop()));
    console.log(`export of batch ${r.seq}: ${r.entries} entries in ${r.chunks} chunks, ${(r.bytes / 2 ** 20).toFixed(1)} MiB, ${r.threads} threads, in ${(r.ms / 1000).toFixed(1)} s: ${r.dir}`);
  });

program
  .command('import')
  .description('write the entries of an export (birch export) into a database, after checking every chunk; into a new database it restores the export exactly')
  .argument('<export>', 'the export directory')
  .argument('<dir>', 'database directory (created if missing)')
  .action(async (source: string, dir: string) => {
    if (!fs.existsSync(path.join(source, 'manifest.json'))) fail(`${source} is not a birchdb export (no manifest.json)`);
    // A refused import writes nothing: a database it created for that is removed again.
    const created = !fs.existsSync(dir);
    let db: Birch;
    try {
      db = await open(dir);
    } catch (err) {
      fail(`cannot open ${dir}: ${describeError(err)}`);
    }
    let r;
    try {
      r = await db.import(source);
    } catch (err) {
      await db.close().catch(() => undefined);
      if (created && db.seq === 0) fs.rmSync(dir, { recursive: true, force: true });
      fail(`import failed: ${describeError(err)}${created && db.seq === 0 ? `; nothing was written, and the database created for it in ${dir} was removed` : ''}`);
    }
    await db.close();
    console.log(`imported ${r.entries} entries from ${r.chunks} chunks in ${(r.ms / 1000).toFixed(1)} s into ${dir}`);
  });

program
  .command('stat')
  .description('print the database statistics (trees, depth, fill, pages, free pages, journal) as JSON')
  .argument('<dir>', 'database directory')
  .action(async (dir: string) => {
    const db = await openExisting(dir);
    try {
      console.log(JSON.stringify(db.stats({ trees: true }), null, 2));
    } finally {
      await db.close();
    }
  });

program
  .command('dump')
  .description(`write every key and value as text (header "${DUMP_HEADER}", then tree, key and value per line: the README's "Tools" describes it)`)
  .argument('<dir>', 'database directory')
  .option('--tree <name>', 'only this tree ("-" for the default tree)')
  .action(async (dir: string, opts: { tree?: string }) => {
    const db = await openExisting(dir);
    const snap = db.snapshot();
    try {
      const trees: (string | undefined)[] = opts.tree === undefined ? [undefined, ...snap.trees()] : [decodeTreeName(opts.tree)];
      for (const t of trees) if (t !== undefined && !snap.trees().includes(t)) fail(`there is no tree named "${t}"`);
      const out: string[] = [DUMP_HEADER];
      const flush = (): void => {
        fs.writeSync(1, `${out.join('\n')}\n`);
        out.length = 0;
      };
      for (const t of trees) {
        for (const [k, v] of snap.range(t === undefined ? {} : { tree: t })) {
          out.push(dumpLine(t, k, v));
          if (out.length >= 4096) flush();
        }
      }
      flush();
    } finally {
      snap.release();
      await db.close();
    }
  });

program
  .command('load')
  .description('read a dump (birch dump) and write its entries, 1,000 per transaction')
  .argument('<dir>', 'database directory (created if missing)')
  .option('--file <path>', 'read this file instead of standard input')
  .action(async (dir: string, opts: { file?: string }) => {
    let db: Birch;
    // A load that fails before committing anything removes what it created, so that no empty
    // database is left behind looking like a result.
    const existed = fs.existsSync(dir);
    const created = !existed || fs.readdirSync(dir).length === 0;
    try {
      db = await open(dir);
    } catch (err) {
      fail(`cannot open ${dir}: ${describeError(err)}`);
    }
    const input = opts.file === undefined ? process.stdin : fs.createReadStream(opts.file);
    const lines = readline.createInterface({ input, crlfDelay: Infinity });
    let lineNo = 0;
    let pending: DumpEntry[] = [];
    let loaded = 0;
    const commit = async (): Promise<void> => {
      const batch = pending;
      pending = [];
      await db.batch(batch.map((e) => ({ type: 'put' as const, key: e.key, value: e.value, ...(e.tree === undefined ? {} : { tree: e.tree }) })));
      loaded += batch.length;
    };
    try {
      for await (const line of lines) {
        lineNo++;
        if (lineNo === 1) {
          if (line !== DUMP_HEADER) throw new Error(`line 1: expected "${DUMP_HEADER}", found "${line.slice(0, 40)}"`);
          continue;
        }
        if (line === '') continue;
        pending.push(parseDumpLine(line, lineNo));
        if (pending.length >= 1000) await commit();
      }
      if (lineNo === 0) throw new Error('the input is empty: expected a dump');
      await commit();
      console.error(`loaded ${loaded} entries`);
    } catch (err) {
      await db.close();
      if (loaded === 0 && created) {
        if (existed) for (const name of fs.readdirSync(dir)) fs.rmSync(path.join(dir, name), { recursive: true, force: true });
        else fs.rmSync(dir, { recursive: true, force: true });
        fail(`load stopped: ${describeError(err)}; nothing was written, and the database the load had created in ${dir} was removed`);
      }
      if (loaded === 0) fail(`load stopped: ${describeError(err)}; nothing was written, ${dir} is as it was`);
      fail(`load stopped: ${describeError(err)}; the ${loaded} entries before it were committed to ${dir} and kept`);
    }
    await db.close();
  });

program
  .command('journal')
  .description("list the journal's records (batches, operations, sizes, header status, checkpointed or to replay) without changing anything")
  .argument('<dir>', 'database directory')
  .action((dir: string) => {
    assertDatabaseDir(dir);
    let listing: ReturnType<typeof inspectJournal>;
    try {
      listing = inspectJournal(dir);
    } catch (err) {
      fail(`cannot read ${dir}: ${describeError(err)}`);
    }
    const { newest, older } = listing.metas;
    console.log(`data file: checkpoint ${newest.checkpointId} holds batches up to ${newest.seq}${older === undefined ? '' : ` (the other meta: checkpoint ${older.checkpointId}, up to ${older.seq})`}; later intact records would be replayed on open`);
    for (const seg of listing.segments) {
      console.log(`${seg.segment} (seq ${seg.segSeq}): ${seg.records.length} valid record(s)${seg.stop === '' ? '' : `; scan stopped: ${seg.stop}`}`);
      for (const r of seg.records) {
        const h = r.header;
        const stored = (h.flags & 1) === 0 ? 'LZ4' : 'stored';
        console.log(`  batches ${h.firstSeq}..${h.lastSeq}  offset ${r.offset}  ${h.ops} ops  ${h.rawBytes} B raw, ${h.storedBytes} B ${stored}  header ok  ${h.lastSeq <= newest.seq ? 'checkpointed' : 'to replay'}`);
      }
    }
  });

try {
  await program.parseAsync();
} catch (err) {
  // A database that fails mid-way (a corrupt page met while dumping, say): one clear line, no stack.
  if (err instanceof BirchError) fail(describeError(err));
  throw err;
}
