// A reading thread for perf/backup-compact.ts: random point reads of keys 0..keys-1 for `ms`
// milliseconds, through birchdb's openReader (a handle from the owner) or lmdb-js opened again on
// the same path; posts how many reads it made and how many found their key.
import { parentPort, workerData } from 'node:worker_threads';
import { openReader, type ReaderHandle } from '../api/index.js';
import { prng } from '../bin/bench/workloads.js';

interface Init {
  engine: string;
  handle?: ReaderHandle;
  path: string;
  keys: number;
  ms: number;
  seed: number;
}
const init = workerData as Init;
const key = (i: number): Buffer => Buffer.from(String(i).padStart(16, '0'));
let get: (k: Buffer) => unknown;
let close: () => void;
if (init.engine === 'birchdb') {
  const r = await openReader(init.handle as ReaderHandle);
  get = (k) => r.get(k);
  close = () => r.close();
} else {
  const lmdb = (await import('lmdb')) as unknown as { open(o: object): { get(k: Buffer): unknown; close(): Promise<void> } };
  const db = lmdb.open({ path: init.path, compression: false, encoding: 'binary', keyEncoding: 'binary' });
  get = (k) => db.get(k);
  close = () => void db.close();
}
const rand = prng(init.seed);
let reads = 0;
let found = 0;
const end = performance.now() + init.ms;
while (performance.now() < end) {
  for (let i = 0; i < 1000; i++) {
    if (get(key(Math.floor(rand() * init.keys))) !== undefined) found++;
  }
  reads += 1000;
}
close();
parentPort?.postMessage({ reads, found });
