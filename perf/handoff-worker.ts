// The writer of perf/handoff.ts: takes each batch and acknowledges it at once, stamping both.
import { parentPort, workerData } from 'node:worker_threads';
import { performance } from 'node:perf_hooks';
import { RingConsumer, type RingEntry } from '../api/handoff-ring.js';

const data = workerData as { handoff: 'shared-memory' | 'messages'; ring?: SharedArrayBuffer; stamps: SharedArrayBuffer; n: number };
const stamps = new Float64Array(data.stamps);
/** Microseconds on a clock both threads share. */
const clock = (): number => (performance.timeOrigin + performance.now()) * 1000;
const stats = { records: 1, ops: 1, rawBytes: 1, storedBytes: 1, bytesWritten: 1, syncs: 1, segments: 1, segmentsCreated: 0, segmentsRecycled: 0, storedRecords: 0 };
const port = parentPort as NonNullable<typeof parentPort>;

if (data.handoff === 'shared-memory') {
  const ring = new RingConsumer(data.ring as SharedArrayBuffer);
  const e: RingEntry = { kind: 0, flags: 0, chunk: 0, offset: 0, length: 0, ops: 0, firstSeq: 0, lastSeq: 0 };
  port.postMessage('ready');
  let done = 0;
  while (done < data.n) {
    const bell = ring.bell;
    if (ring.take(e) === undefined) {
      ring.waitForBell(bell);
      continue;
    }
    stamps[2 * (e.lastSeq - 1)] = clock();
    stamps[2 * (e.lastSeq - 1) + 1] = clock();
    ring.acknowledge(e.lastSeq, e.lastSeq, 0, { ...stats });
    done++;
  }
} else {
  port.on('message', (m: { lastSeq: number }) => {
    stamps[2 * (m.lastSeq - 1)] = clock();
    stamps[2 * (m.lastSeq - 1) + 1] = clock();
    port.postMessage({ kind: 'synced', lastSeq: m.lastSeq, records: 1, journal: { ...stats }, journalBytesHeld: 0 });
  });
  port.postMessage('ready');
}
