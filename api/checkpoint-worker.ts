// The checkpoint thread: wires the CheckpointService (checkpoint-service.ts) to its messages.
//
// It runs at a lower scheduling priority than the process's other threads (on Linux a thread has
// a nice value of its own): checkpoints are long runs of CPU work that nothing waits for, while
// the writer and the main thread do short steps that commits wait for. When the checkpointer
// cannot keep up, the write buffer grows and backpressure slows the writers, which frees the CPU.
import os from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import { CheckpointService } from './checkpoint-service.js';
import { serveWorker } from './threads.js';
import { ReaderSlots } from '../db/reader-slots.js';
import type { CheckpointerInit, FromCheckpointer, ToCheckpointer } from './protocol.js';

/** Nice value of the checkpointer thread (0 is the default; higher runs less eagerly). */
const CHECKPOINTER_NICE = 5;

if (parentPort === null) throw new Error('checkpoint-worker runs only as a worker thread');
const port = parentPort;
const init = workerData as CheckpointerInit;
const readers = new ReaderSlots(init.floor);
const send = (msg: FromCheckpointer, transfer?: ArrayBuffer[]): void => port.postMessage(msg, transfer ?? []);
try {
  // pid 0: the calling thread, on Linux. Where it is not allowed or not per-thread, it changes nothing that matters.
  os.setPriority(0, CHECKPOINTER_NICE);
} catch {
  // A priority is a preference, not a requirement.
}
serveWorker<ToCheckpointer, FromCheckpointer>({
  thread: 'checkpointer',
  port,
  init,
  send,
  start: (dir) => {
    const service = new CheckpointService(dir, init, () => readers.floor(), send);
    return { service, ready: () => ({ kind: 'ready', stats: { ...service.stats } }) };
  },
  failed: (error) => ({ kind: 'openFailed', error }),
});
