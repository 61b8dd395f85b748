// The other thread of the concurrent-eviction test (shared-cache.test.ts): reads random pages of
// the test file through the shared cache, as a reader thread would, and, as the checkpointer does,
// installs and removes pages; checks every frame it is handed. Reports what it saw.
import { parentPort, workerData } from 'node:worker_threads';
import { NodeDirectory } from '../../pager/backend.js';
import { PageReader } from '../../pager/reader.js';
import { SharedPageCache, type SharedCacheInit } from '../../pager/shared-cache.js';
import { checkFrame, expectedPage, type EvictionReport } from './eviction-pages.js';

const init = workerData as { dir: string; file: string; cache: SharedCacheInit; slot: number; pages: number; rounds: number; seed: number };
const cache = SharedPageCache.attach(init.cache);
cache.useSlot(init.slot);
const reader = new PageReader(new NodeDirectory(init.dir).open(init.file, { create: false, readOnly: true }), cache);
let s = init.seed >>> 0;
const rand = (n: number): number => {
  s = (Math.imul(s, 1103515245) + 12345) >>> 0;
  return (s >>> 16) % n;
};
const report: EvictionReport = { reads: 0, wrong: 0, installs: 0, removes: 0, firstWrong: '' };
for (let r = 0; r < init.rounds; r++) {
  const no = 3 + rand(init.pages - 3);
  const op = rand(16);
  if (op === 0) {
    cache.install(no, expectedPage(no));
    report.installs++;
  } else if (op === 1) {
    cache.remove(no);
    report.removes++;
  } else {
    reader.begin();
    try {
      const off = reader.pageAt(no);
      const problem = checkFrame(reader.bytes, off, no);
      report.reads++;
      if (problem !== undefined) {
        report.wrong++;
        if (report.firstWrong === '') report.firstWrong = problem;
      }
    } finally {
      reader.end();
    }
  }
}
parentPort?.postMessage(report);
