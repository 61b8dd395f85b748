// The checkpointer thread: wires the CheckpointService (checkpointer.ts) to its messages.
//
// It runs at a lower scheduling priority than the process's other threads (on Linux a thread has
// a nice value of its own): checkpoints are long runs of CPU work that nothing waits for, while
// the writer and the main thread do short steps that commits wait for. When the checkpointer
// cannot keep up, the write buffer grows and backpressure slows the writers, which frees the CPU.
import os from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import { NodeDirectory } from '../pager/backend.js';
import { checksumReady } from '../pager/checksum.js';
import { CheckpointService } from './checkpointer.js';
import { endWorkerPort, faultyIfPlanned } from './threads.js';
import { toWireError, type CheckpointerInit, type FromCheckpointer, type ToCheckpointer } from './protocol.js';

/** Nice value of the checkpointer thread (0 is the default; higher runs less eagerly). */
const CHECKPOINTER_NICE = 5;

if (parentPort === null) throw new Error('checkpoint-worker runs only as a worker thread');
const port = parentPort;
const init = workerData as CheckpointerInit;
const floor = new Int32Array(init.floor);
const send = (msg: FromCheckpointer, transfer?: ArrayBuffer[]): void => port.postMessage(msg, transfer ?? []);
try {
  // pid 0: the calling thread, on Linux. Where it is not allowed or not per-thread, it changes nothing that matters.
  os.setPriority(0, CHECKPOINTER_NICE);
} catch {
  // A priority is a preference, not a requirement.
}
// The main thread posts nothing before 'ready', so no message can arrive before the listener.
void checksumReady().then(() => {
  let service: CheckpointService;
  try {
    service = new CheckpointService(faultyIfPlanned(new NodeDirectory(init.dir), init.faults, 'checkpointer'), init, () => Atomics.load(floor, 0), send);
  } catch (err) {
    send({ kind: 'openFailed', error: toWireError(err, 'checkpointer') });
    process.exit(0);
  }
  port.on('message', (msg: ToCheckpointer) => {
    service.receive(msg);
    if (msg.kind === 'close') endWorkerPort(port);
  });
  send({ kind: 'ready', stats: { ...service.stats } });
});
