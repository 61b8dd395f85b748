// Runs abstract-level's own compliance suite (abstract-level/test, tape) against BirchLevel, with
// its sublevel re-run, in a process of its own (level.test.ts reads its TAP summary). Each store
// is a fresh directory under one temporary root, removed at the end.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'tape';
import { createRequire } from 'node:module';
import { BirchLevel } from '../../level/index.js';
import { MemoryDirectory } from '../../api/index.js';

const require = createRequire(import.meta.url);
const suite = require('abstract-level/test') as (o: { test: typeof test; factory: (opts?: object) => BirchLevel }) => void;

// BIRCH_LEVEL_SUITE=memory: every store on a memory directory (the writer and checkpointer on
// this thread); otherwise files, threads and all, as users run it.
const memory = process.env.BIRCH_LEVEL_SUITE === 'memory';
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'birch-level-suite-'));
let n = 0;
test.onFinish(() => fs.rmSync(root, { recursive: true, force: true }));
suite({
  test,
  // Small journal segments: the suite opens hundreds of stores.
  factory: (opts?: object) =>
    new BirchLevel(path.join(root, String(n++)), { ...opts, birch: { journalSegmentSize: 64 * 1024, ...(memory ? { backend: new MemoryDirectory() } : {}) } }),
});
