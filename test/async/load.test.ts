// Load: 10,000 concurrent callers keep the writer saturated. Every promise settles, every
// acknowledged write is readable. The event loop's delay and memory are reported (speed and size
// goals are reported, not asserted: this machine is shared).
import assert from 'node:assert/strict';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { open } from '../../engine/index.js';
import { rmDir, tmpDir } from '../helpers/index.js';
import { reliabilityRow } from '../helpers/reliability.js';

const CALLERS = 10_000;
const SECONDS = Number(process.env.BIRCH_LOAD_SECONDS ?? 8);

describe('load: 10,000 concurrent callers', () => {
  it(`every promise settles and every acknowledged write is readable (${SECONDS} s)`, async function () {
    this.timeout(SECONDS * 1000 + 120_000);
    const row = reliabilityRow(this, 'load (async)');
    const dir = tmpDir('birch-load');
    const db = await open(dir, { maxQueuedBytes: 8 * 1024 * 1024 });
    const delay = monitorEventLoopDelay({ resolution: 10 });
    delay.enable();
    const rssStart = process.memoryUsage().rss;
    let rssPeak = rssStart;
    const sampler = setInterval(() => (rssPeak = Math.max(rssPeak, process.memoryUsage().rss)), 100);
    const deadline = Date.now() + SECONDS * 1000;
    const acked = new Map<number, number>();
    let settled = 0;
    let failed = 0;
    try {
      await Promise.all(
        Array.from({ length: CALLERS }, async (_, c) => {
          for (let n = 1; Date.now() < deadline; n++) {
            try {
              await db.batch([
                { type: 'put', key: `c${c}`, value: String(n) },
                { type: 'put', key: `c${c}-${n % 4}`, value: 'x'.repeat(50 + (n % 200)) },
              ]);
              acked.set(c, n);
            } catch {
              failed++;
            }
            settled++;
          }
        }),
      );
      delay.disable();
      clearInterval(sampler);
      assert.equal(failed, 0, 'no write failed');
      for (const [c, n] of acked) assert.equal(db.get(`c${c}`)?.toString(), String(n), `caller ${c}: acknowledged batch ${n} is not visible`);
      row.cases += settled;
      row.acked += acked.size;
      const s = db.stats();
      console.log(`      ${settled} batches settled from ${CALLERS} callers in ${SECONDS} s (${Math.round(settled / SECONDS)}/s), ${s.writer.batchesPerCommit.toFixed(0)} batches per commit`);
      console.log(`      event loop delay p50 ${(delay.percentile(50) / 1e6).toFixed(1)} ms, p99 ${(delay.percentile(99) / 1e6).toFixed(1)} ms, max ${(delay.max / 1e6).toFixed(1)} ms; RSS ${(rssStart / 2 ** 20).toFixed(0)} -> peak ${(rssPeak / 2 ** 20).toFixed(0)} MiB`);
      assert.ok(db.check().ok);
    } finally {
      clearInterval(sampler);
      await db.close();
      rmDir(dir);
    }
  });
});
