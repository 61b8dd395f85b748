// Starting the writer and the checkpointer: each on a worker thread of its own, or, when the
// caller gives a storage backend (tests: the in-memory and simulated disks, which a thread cannot
// share), on the opening thread, as the same classes driven by the same messages. Inline
// messages are delivered on a later turn of the event loop, in order, as a thread's would be.
import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';
import { BirchError, readEnv } from '../platform/errors.js';
import { NodeDirectory, type DirectoryBackend } from '../pager/backend.js';
import { checksumReady } from '../pager/checksum.js';
import { FaultyDirectory } from '../pager/faults.js';
import type { CheckpointStats } from '../db/checkpoint.js';
import { ReaderSlots } from '../db/reader-slots.js';
import { CheckpointService } from './checkpoint-service.js';
import { Writer } from './writer.js';
import { RingConsumer, RingProducer, hasWaitAsync } from './handoff-ring.js';
import { RingDriver, type RingControl } from './ring-driver.js';
import { RingLink } from './ring-link.js';
import {
  fromWireError, toWireError, type CheckpointerInit, type FaultInit, type FromCheckpointer, type FromWriter, type ToCheckpointer, type ToWriter, type WireError, type WriterInit,
} from './protocol.js';

/** The main thread's handle on the writer or the checkpointer. */
export interface Peer<To> {
  post(msg: To, transfer?: ArrayBuffer[]): void;
  /** Keep the process alive while work is in flight (worker threads only). */
  ref(): void;
  unref(): void;
  terminate(): Promise<void>;
}

/** How batches reach the writer and acknowledgements come back: the handoff ring, or messages. */
export type Handoff = 'shared-memory' | 'messages';

export interface WriterPeer extends Peer<ToWriter> {
  readonly handoff: Handoff;
}

export interface PeerEvents<From> {
  message(msg: From): void;
  /** The thread ended without being asked to (an uncaught error, a crash). */
  died(err: Error): void;
}

/**
 * The body of a worker thread, the same for the writer and the checkpointer: once checksums are
 * ready, builds its service on the directory (with the test fault plan, if any) and says 'ready',
 * or 'openFailed' and exits; then hands the service every message. The main thread posts nothing
 * before 'ready', so no message can arrive before the listener.
 */
export function serveWorker<To extends { kind: string }, From>(opts: {
  thread: 'writer' | 'checkpointer';
  port: MessagePort;
  init: { dir: string; faults?: FaultInit };
  send: (msg: From) => void;
  start: (dir: DirectoryBackend) => { service: { receive(msg: To): void }; ready: () => From; run?: (closed: () => void) => void };
  failed: (error: WireError) => From;
}): void {
  const { port, send } = opts;
  void checksumReady().then(() => {
    let started: ReturnType<typeof opts.start>;
    try {
      started = opts.start(faultyIfPlanned(new NodeDirectory(opts.init.dir), opts.init.faults, opts.thread));
    } catch (err) {
      send(opts.failed(toWireError(err, opts.thread)));
      process.exit(0);
    }
    if (started.run !== undefined) {
      // The service takes its messages itself (the writer from its ring), until it closes.
      send(started.ready());
      started.run(() => {
        if (typeof port.close === 'function') port.close();
      });
      return;
    }
    port.on('message', (msg: To) => {
      started.service.receive(msg);
      // Closing the port lets the thread end. Deno's worker_threads has no parentPort.close();
      // there the main thread's terminate(), which follows every close, ends the thread.
      if (msg.kind === 'close' && typeof port.close === 'function') port.close();
    });
    send(started.ready());
  });
}

/** The directory a thread's files live in, with the test fault plan if there is one. */
export function faultyIfPlanned(dir: DirectoryBackend, faults: FaultInit | undefined, thread: 'writer' | 'checkpointer'): DirectoryBackend {
  return faults === undefined ? dir : new FaultyDirectory(dir, faults.plan, faults.counters, thread);
}

/** A worker's peer, its first message, and expectExit(): the thread was asked to close by other means than post() (the handoff ring's port), so its exit is no death. */
async function startWorker<To, From extends { kind: string }>(file: string, workerData: { heapLimitMb: number }, events: PeerEvents<From>, transferList: MessagePort[] = []): Promise<{ peer: Peer<To>; ready: From; expectExit: () => void }> {
  const worker = new Worker(new URL(file, import.meta.url), { workerData, transferList, resourceLimits: { maxOldGenerationSizeMb: workerData.heapLimitMb } });
  let ended = false;
  let handshake: { message(m: From): void; error(e: Error): void; exit(code: number): void } | undefined;
  let first: From;
  try {
    first = await new Promise<From>((resolve, reject) => {
      handshake = {
        message: resolve,
        error: reject,
        // A thread that exits without a word (process.exit in it) must not leave open() pending.
        exit: (code) => reject(new BirchError('INTERNAL', `the ${file} thread exited (code ${code}) before it was ready`)),
      };
      worker.once('message', handshake.message);
      worker.once('error', handshake.error);
      worker.once('exit', handshake.exit);
    });
    if (first.kind === 'openFailed') throw fromWireError((first as unknown as { error: Parameters<typeof fromWireError>[0] }).error);
    if (first.kind !== 'ready') throw new BirchError('INTERNAL', `the ${file} thread said ${first.kind} first`);
  } catch (err) {
    await worker.terminate();
    throw err;
  }
  // Only our own listeners: the worker keeps listeners of its own (port referencing).
  const h = handshake as NonNullable<typeof handshake>;
  worker.off('message', h.message);
  worker.off('error', h.error);
  worker.off('exit', h.exit);
  worker.on('message', (m: From) => events.message(m));
  worker.on('error', (err) => {
    ended = true;
    events.died(err);
  });
  worker.on('exit', (code) => {
    if (!ended) events.died(new Error(`the thread exited (code ${code})`));
    ended = true;
  });
  worker.unref();
  const peer: Peer<To> = {
    post: (msg, transfer) => {
      // Asked to close, the thread ends on its own: that exit is expected.
      if ((msg as { kind?: unknown }).kind === 'close') ended = true;
      worker.postMessage(msg, transfer ?? []);
    },
    ref: () => worker.ref(),
    unref: () => worker.unref(),
    terminate: async () => {
      ended = true;
      await worker.terminate();
    },
  };
  return { peer, ready: first, expectExit: () => void (ended = true) };
}

/** Runs `receive` for each message on a later turn, in order. */
function inlinePeer<To>(receive: (msg: To) => void): Peer<To> {
  let stopped = false;
  return {
    post: (msg) => setImmediate(() => {
      if (!stopped) receive(msg);
    }),
    ref: () => undefined,
    unref: () => undefined,
    terminate: async () => {
      stopped = true;
    },
  };
}

/**
 * The hand-off to use: the ring, unless the runtime lacks Atomics.waitAsync (a worker thread's
 * acknowledgements must not block the main thread) or BIRCH_HANDOFF=messages asks for messages.
 */
export function chooseHandoff(inline: boolean): Handoff {
  if (readEnv('BIRCH_HANDOFF') === 'messages') return 'messages';
  return inline || hasWaitAsync() ? 'shared-memory' : 'messages';
}

export async function startWriter(init: WriterInit, backend: DirectoryBackend | undefined, events: PeerEvents<FromWriter>): Promise<WriterPeer> {
  const handoff = chooseHandoff(backend !== undefined);
  if (backend === undefined) {
    if (handoff === 'messages') return Object.assign((await startWorker<ToWriter, FromWriter>('./writer-worker.js', init, events)).peer, { handoff });
    const ring = RingProducer.create();
    const { port1, port2 } = new MessageChannel();
    let link: RingLink | undefined;
    const withRing: WriterInit = { ...init, ring: { sab: ring.sab, port: port2 } };
    const { peer, expectExit } = await startWorker<ToWriter, FromWriter>('./writer-worker.js', withRing, {
      message: (m) => (link === undefined ? events.message(m) : link.received(m)),
      died: (e) => {
        link?.poll();
        link?.stop();
        events.died(e);
      },
    }, [port2]);
    link = new RingLink({
      ring,
      control: (m) => {
        if (m.kind === 'close') expectExit();
        port1.postMessage(m);
      },
      wakeWriter: () => ring.ring(),
      deliver: (m) => events.message(m),
      thread: { ref: () => peer.ref(), unref: () => peer.unref(), terminate: async () => {
        port1.close();
        await peer.terminate();
      } },
      waitAsync: true,
    });
    return Object.assign(link, { handoff });
  }
  const dir = faultyIfPlanned(backend, init.faults, 'writer');
  if (handoff === 'messages') {
    const send = (m: FromWriter): void => void setImmediate(() => events.message(m));
    const writer = new Writer(dir, init, send);
    return Object.assign(inlinePeer((m: ToWriter) => writer.receive(m)), { handoff });
  }
  // Inline through the ring: the same entries, control messages and acknowledgements as a thread's,
  // with the driver stepped from the event loop instead of a blocking loop.
  const ring = RingProducer.create();
  const consumer = new RingConsumer(ring.sab);
  const control: RingControl[] = [];
  let stopped = false;
  let link!: RingLink;
  const send = (m: FromWriter): void => {
    if (m.kind === 'synced') {
      consumer.report(m);
      setImmediate(() => link.poll());
    } else setImmediate(() => link.received(m));
  };
  const driver = new RingDriver(new Writer(dir, { ...init, loop: true }, send), consumer, () => control.shift());
  let scheduled = false;
  const step = (): void => {
    scheduled = false;
    if (stopped) return;
    if (driver.step() === 'busy') wake();
    // Inline, the link does not wait on ACKS: entries that waited for room go out now.
    if (link.backlogged) setImmediate(() => link.poll());
  };
  const wake = (): void => {
    if (scheduled || stopped) return;
    scheduled = true;
    setImmediate(step);
  };
  link = new RingLink({
    ring,
    control: (m) => control.push(m),
    wakeWriter: wake,
    deliver: (m) => events.message(m),
    thread: { ref: () => undefined, unref: () => undefined, terminate: async () => {
      stopped = true;
    } },
    waitAsync: false,
  });
  return Object.assign(link, { handoff });
}

/** The checkpointer, and its statistics as it starts (the data file's size and free pages). */
export async function startCheckpointer(init: CheckpointerInit, backend: DirectoryBackend | undefined, events: PeerEvents<FromCheckpointer>): Promise<{ peer: Peer<ToCheckpointer>; stats: CheckpointStats }> {
  if (backend === undefined) {
    const { peer, ready } = await startWorker<ToCheckpointer, FromCheckpointer>('./checkpoint-worker.js', init, events);
    return { peer, stats: (ready as Extract<FromCheckpointer, { kind: 'ready' }>).stats };
  }
  const readers = new ReaderSlots(init.floor);
  const send = (m: FromCheckpointer): void => void setImmediate(() => events.message(m));
  const service = new CheckpointService(faultyIfPlanned(backend, init.faults, 'checkpointer'), init, () => readers.floor(), send);
  return { peer: inlinePeer((m: ToCheckpointer) => service.receive(m)), stats: { ...service.stats } };
}
