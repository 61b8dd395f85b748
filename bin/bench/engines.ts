// One interface over the engines a user would compare: birchdb (its public async API), lmdb-js,
// LevelDB (classic-level) and SQLite in WAL mode (better-sqlite3). The peers are development
// dependencies of this repository, never of the published package: in an app without them,
// `birch bench` runs birchdb alone and prints the one command that installs them. Durability is the same for all:
// with sync, a write returns only once its transaction is on disk.
import fs from 'node:fs';
import path from 'node:path';
import { open as openBirch, type Birch } from '../../api/index.js';
import { PEER_CACHE_BYTES } from './workloads.js';
import { RECORD_HEADER_SIZE, alignRecord, opBytes } from '../../journal/format.js';

export interface KV {
  key: Buffer;
  /** null: delete. */
  value: Buffer | null;
  /** A named store: birchdb's named tree; the peers prefix the key with the name and a 0 byte. */
  store?: string;
}

function prefixed(op: KV): Buffer {
  return op.store === undefined ? op.key : Buffer.concat([Buffer.from(op.store), Buffer.from([0]), op.key]);
}

export interface Engine {
  readonly name: string;
  /** One transaction. */
  write(ops: KV[]): Promise<void>;
  /** One single-op transaction (concurrent, readwhilewriting): synchronous where the engine's commit is. */
  put(key: Buffer, value: Buffer): Promise<void> | void;
  /** A point read: synchronous where the engine's read is (the harness awaits only a Promise). */
  get(key: Buffer): Promise<Buffer | undefined> | Buffer | undefined;
  /** Reads every entry in key order; returns how many. */
  scan(): Promise<number>;
  /** Reads up to `limit` entries, keys and values, ascending from the first key >= `start`; returns how many. */
  range(start: Buffer, limit: number): Promise<number> | number;
  /** Engine-specific figures (birchdb: checkpoints, buffer, latency while checkpoints ran). */
  extra(): Record<string, number>;
  /**
   * Called as the timed phase starts; the function it returns, called as the phase ends, gives
   * figures for the phase alone (birchdb: the page cache hit ratio), added to extra()'s.
   */
  beginTimed?(): () => Record<string, number>;
  /** birchdb only: whether a checkpoint is running now (readwhilewriting sorts reads by it). */
  checkpointInFlight?(): boolean;
  /**
   * birchdb only: copies the directory as a crash would leave it now; the function returned
   * opens the copy (the buffered batches replayed from the journal) and gives the time it took,
   * in ms. Taken before close() and measured after it, so that neither the copy's reads and
   * writes nor the recovery's memory count in the run's own figures.
   */
  crashCopy?(): Promise<() => Promise<number>>;
  close(): Promise<void>;
}

export interface EngineOptions {
  dir: string;
  sync: boolean;
  /** Unset: each engine's default (birchdb), or PEER_CACHE_BYTES (the peers). */
  cacheSize: number | undefined;
  /** birchdb's memoryLimit (the peers have no such bound). */
  memoryLimit?: number;
}

export const ENGINES = ['birchdb', 'lmdb', 'level', 'sqlite', 'floor', 'birchlevel'] as const;
export type EngineName = (typeof ENGINES)[number];

/** The npm package of each engine: the peers are not dependencies of birchdb, only of its repository. */
export const PACKAGE: Record<EngineName, string> = {
  birchdb: 'birchdb',
  lmdb: 'lmdb',
  level: 'classic-level',
  sqlite: 'better-sqlite3',
  floor: 'birchdb',
  birchlevel: 'abstract-level',
};

/** The one command that installs every missing peer. */
export function installCommand(missing: readonly EngineName[]): string {
  return `npm install --save-dev ${missing.map((n) => PACKAGE[n]).join(' ')}`;
}

async function birch(o: EngineOptions): Promise<Engine> {
  const limits = { ...(o.cacheSize === undefined ? {} : { cacheSize: o.cacheSize }), ...(o.memoryLimit === undefined ? {} : { memoryLimit: o.memoryLimit }) };
  const db: Birch = await openBirch(o.dir, { sync: o.sync, ...limits });
  return {
    name: 'birchdb',
    write: (ops) => db.batch(ops.map((op) => {
      const tree = op.store === undefined ? {} : { tree: op.store };
      return op.value === null ? { type: 'del', key: op.key, ...tree } : { type: 'put', key: op.key, value: op.value, ...tree };
    })),
    put: (k, v) => db.put(k, v),
    get: (k) => db.get(k),
    scan: async () => {
      let n = 0;
      for (const _ of db.range()) n++;
      return n;
    },
    range: (start, limit) => {
      let n = 0;
      for (const _ of db.range({ gte: start, limit })) n++;
      return n;
    },
    extra: () => {
      const s = db.stats({ trees: false });
      const c = s.checkpoints;
      return {
        batchesPerCommit: s.writer.batchesPerCommit,
        checkpoints: c.count,
        checkpointMs: c.avgMs,
        pagesPerCheckpoint: c.count === 0 ? 0 : c.pagesWritten / c.count,
        writeRunsPerCheckpoint: c.count === 0 ? 0 : c.writeRuns / c.count,
        bufferMiB: s.buffer.bytes / 2 ** 20,
        ...(s.latency.duringCheckpointP99Ms === null ? {} : { p99DuringCheckpointMs: s.latency.duringCheckpointP99Ms }),
        slowedTurns: s.writer.slowedTurns,
        blockedBatches: s.writer.blockedBatches,
      };
    },
    beginTimed: () => {
      const c0 = db.stats({ trees: false }).cache;
      return (): Record<string, number> => {
        const c1 = db.stats({ trees: false }).cache;
        const hits = c1.hits - c0.hits;
        const lookups = hits + c1.misses - c0.misses;
        return lookups === 0 ? {} : { cacheHitRatio: hits / lookups };
      };
    },
    checkpointInFlight: () => db.stats({ trees: false }).checkpoints.inFlight,
    crashCopy: async () => {
      // Every acknowledged batch is on disk and nothing is being written but a checkpoint's
      // pages to free space: wait for it, so that the copy is what a crash now would leave.
      while (db.stats({ trees: false }).checkpoints.inFlight) await new Promise((r) => setTimeout(r, 20));
      const copy = `${o.dir}-crash`;
      fs.cpSync(o.dir, copy, { recursive: true, filter: (src) => path.basename(src) !== 'LOCK' });
      return async () => {
        try {
          const again = await openBirch(copy, { sync: o.sync, ...limits });
          const ms = again.stats({ trees: false }).recovery.ms;
          await again.close();
          return ms;
        } finally {
          fs.rmSync(copy, { recursive: true, force: true });
        }
      };
    },
    close: () => db.close(),
  };
}

interface LmdbDb {
  put(k: Buffer, v: Buffer): Promise<boolean>;
  remove(k: Buffer): Promise<boolean>;
  get(k: Buffer): Buffer | undefined;
  batch(fn: () => void): Promise<unknown>;
  getRange(opts?: object): Iterable<{ key: Buffer; value: Buffer }>;
  close(): Promise<void>;
}

async function lmdb(o: EngineOptions): Promise<Engine> {
  const mod = (await import('lmdb')) as unknown as { open(opts: object): LmdbDb };
  // overlappingSync resolves writes before they are durable; it is turned off so that, with sync,
  // a resolved write is on disk as it is for the other engines.
  const db = mod.open({ path: o.dir, compression: false, encoding: 'binary', keyEncoding: 'binary', noSync: !o.sync, overlappingSync: false });
  return {
    name: 'lmdb',
    write: async (ops) => {
      await db.batch(() => {
        for (const op of ops) {
          if (op.value === null) void db.remove(prefixed(op));
          else void db.put(prefixed(op), op.value);
        }
      });
    },
    put: async (k, v) => {
      await db.put(k, v);
    },
    get: (k) => db.get(k),
    scan: async () => {
      let n = 0;
      for (const _ of db.getRange()) n++;
      return n;
    },
    range: (start, limit) => {
      let n = 0;
      for (const _ of db.getRange({ start, limit })) n++;
      return n;
    },
    extra: () => ({}),
    close: () => db.close(),
  };
}

interface LevelDb {
  open(): Promise<void>;
  put(k: Buffer, v: Buffer, o: object): Promise<void>;
  get(k: Buffer): Promise<Buffer | undefined>;
  batch(ops: object[], o: object): Promise<void>;
  iterator(opts?: { gte?: Buffer; limit?: number }): LevelIterator;
  close(): Promise<void>;
}

interface LevelIterator {
  /** Up to `size` entries; none at the end. */
  nextv(size: number): Promise<[Buffer, Buffer][]>;
  close(): Promise<void>;
}

/** Entries per nextv() of a full scan: one promise per thousand entries, not one per entry as for-await costs. */
const LEVEL_SCAN_CHUNK = 1000;

/** Reads the iterator to its end (or its limit) in chunks of `size`; returns how many entries. */
async function drain(it: LevelIterator, size: number): Promise<number> {
  let n = 0;
  try {
    for (let got = await it.nextv(size); got.length > 0; got = await it.nextv(size)) n += got.length;
  } finally {
    await it.close();
  }
  return n;
}

async function level(o: EngineOptions): Promise<Engine> {
  const mod = (await import('classic-level')) as unknown as { ClassicLevel: new (dir: string, opts: object) => LevelDb };
  const db = new mod.ClassicLevel(o.dir, { keyEncoding: 'buffer', valueEncoding: 'buffer', cacheSize: o.cacheSize ?? PEER_CACHE_BYTES });
  return levelEngine('level', db, { sync: o.sync });
}

/**
 * birchdb through birchdb/level (BirchLevel, abstract-level's interface), driven exactly as
 * classic-level is: what the interface costs against birchdb's own API, and against classic-level.
 */
async function birchLevel(o: EngineOptions): Promise<Engine> {
  const mod = (await import('../../level/index.js')) as unknown as { BirchLevel: new (dir: string, opts: object) => LevelDb & { birch: Birch } };
  const limits = { ...(o.cacheSize === undefined ? {} : { cacheSize: o.cacheSize }), ...(o.memoryLimit === undefined ? {} : { memoryLimit: o.memoryLimit }) };
  const db = new mod.BirchLevel(o.dir, { keyEncoding: 'buffer', valueEncoding: 'buffer', birch: { sync: o.sync, ...limits } });
  const engine = await levelEngine('birchlevel', db, {});
  return { ...engine, checkpointInFlight: () => db.birch.stats({ trees: false }).checkpoints.inFlight };
}

async function levelEngine(name: EngineName, db: LevelDb, wo: object): Promise<Engine> {
  await db.open();
  return {
    name,
    write: (ops) => db.batch(ops.map((op) => (op.value === null ? { type: 'del', key: prefixed(op) } : { type: 'put', key: prefixed(op), value: op.value })), wo),
    put: (k, v) => db.put(k, v, wo),
    get: (k) => db.get(k),
    scan: () => drain(db.iterator(), LEVEL_SCAN_CHUNK),
    range: (start, limit) => drain(db.iterator({ gte: start, limit }), limit),
    extra: () => ({}),
    close: () => db.close(),
  };
}

interface SqliteStmt {
  run(...a: unknown[]): unknown;
  get(...a: unknown[]): { v: Buffer } | undefined;
  all(...a: unknown[]): unknown[];
  iterate(...a: unknown[]): Iterable<unknown>;
}
interface SqliteDb {
  pragma(s: string): unknown;
  exec(s: string): void;
  prepare(s: string): SqliteStmt;
  transaction<A extends unknown[]>(fn: (...a: A) => void): (...a: A) => void;
  close(): void;
}

async function sqlite(o: EngineOptions): Promise<Engine> {
  const mod = (await import('better-sqlite3')) as unknown as { default: new (file: string) => SqliteDb };
  const db = new mod.default(path.join(o.dir, 'db.sqlite'));
  db.pragma('journal_mode = WAL');
  // In WAL mode, FULL syncs the WAL at every commit: the same durability as the others.
  db.pragma(`synchronous = ${o.sync ? 'FULL' : 'OFF'}`);
  db.pragma(`cache_size = ${-Math.floor((o.cacheSize ?? PEER_CACHE_BYTES) / 1024)}`);
  db.exec('CREATE TABLE IF NOT EXISTS kv (k BLOB PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID');
  const put = db.prepare('INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)');
  const del = db.prepare('DELETE FROM kv WHERE k = ?');
  const get = db.prepare('SELECT v FROM kv WHERE k = ?');
  const all = db.prepare('SELECT k, v FROM kv ORDER BY k');
  const from = db.prepare('SELECT k, v FROM kv WHERE k >= ? ORDER BY k LIMIT ?');
  const txn = db.transaction((ops: KV[]) => {
    for (const op of ops) {
      if (op.value === null) del.run(prefixed(op));
      else put.run(prefixed(op), op.value);
    }
  });
  return {
    name: 'sqlite',
    // better-sqlite3 is synchronous: each call commits before it returns.
    write: async (ops) => txn(ops),
    put: (k, v) => {
      put.run(k, v);
    },
    get: (k) => get.get(k)?.v,
    scan: async () => {
      let n = 0;
      for (const _ of all.iterate()) n++;
      return n;
    },
    range: (start, limit) => from.all(start, limit).length,
    extra: () => ({}),
    close: async () => db.close(),
  };
}

/** Bytes of the preallocated file the floor writes round: a journal segment's worth, as birchdb's are preallocated too. */
const FLOOR_FILE_BYTES = 4 * 1024 * 1024;

/**
 * Not an engine: what a durable commit cannot beat on this machine. Each transaction is one bare
 * write, on the calling thread, of as many bytes as birchdb's journal record of it would take
 * (a record header, each operation's header, key and value, aligned as records are; random values
 * do not compress), at the next offset of a preallocated file, then one fdatasync. It only writes.
 */
function floor(o: EngineOptions): Engine {
  const file = path.join(o.dir, 'floor.log');
  const fd = fs.openSync(file, 'w+');
  fs.writeSync(fd, Buffer.alloc(FLOOR_FILE_BYTES));
  fs.fsyncSync(fd);
  let at = 0;
  const commit = (bytes: number): void => {
    const record = Buffer.allocUnsafe(alignRecord(RECORD_HEADER_SIZE + bytes)).fill(0x5a);
    if (at + record.length > FLOOR_FILE_BYTES) at = 0;
    fs.writeSync(fd, record, 0, record.length, at);
    at += record.length;
    if (o.sync) fs.fdatasyncSync(fd);
  };
  const none = (): never => {
    throw new Error('the floor only writes: compare it on write workloads (puts, concurrent, fill*)');
  };
  return {
    name: 'floor',
    write: async (ops) => commit(ops.reduce((n, op) => n + opBytes(op.store?.length ?? 0, op.key.length, op.value?.length ?? 0), 0)),
    put: (k, v) => commit(opBytes(0, k.length, v.length)),
    get: none,
    scan: async () => none(),
    range: none,
    extra: () => ({}),
    close: async () => fs.closeSync(fd),
  };
}

/** Opens an engine, or returns why it cannot be (a peer that is not installed). */
export async function openEngine(name: EngineName, o: EngineOptions): Promise<Engine | { missing: string }> {
  try {
    switch (name) {
      case 'birchdb':
        return await birch(o);
      case 'lmdb':
        return await lmdb(o);
      case 'level':
        return await level(o);
      case 'sqlite':
        return await sqlite(o);
      case 'floor':
        return floor(o);
      case 'birchlevel':
        return await birchLevel(o);
    }
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (name !== 'birchdb' && (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND')) return { missing: `${name} is not installed (${PACKAGE[name]})` };
    throw err;
  }
}
