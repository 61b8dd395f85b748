// The checkpoint thread's side of the protocol: runs checkpoints when the main thread asks, reports
// each one's new state, and finishes the data file at close. Checkpoints run here, not on the
// writer thread, so a commit never waits behind one: the writer only journals. The merge is
// synchronous; the thread does nothing else meanwhile, and the main thread keeps reading the
// previous checkpoint's trees and its write buffer until the new state arrives.
//
// This class runs on the checkpoint thread (checkpoint-worker.ts only wires it to messages) or,
// with a storage backend of the caller's, on the opening thread. Three names, three things:
// db/checkpoint.ts's Checkpointer merges and writes one checkpoint (no threads, no messages); this
// CheckpointService answers the main thread's messages with it; checkpoint-worker.ts is the thread.
import type { DirectoryBackend } from '../pager/backend.js';
import { encodeState } from '../pager/meta-format.js';
import { Checkpointer, type CheckpointerOptions } from '../db/checkpoint.js';
import { toWireError, type FromCheckpointer, type ToCheckpointer } from './protocol.js';

export class CheckpointService {
  readonly #checkpointer: Checkpointer;
  readonly #send: (msg: FromCheckpointer, transfer?: ArrayBuffer[]) => void;
  #failed = false;

  constructor(dir: DirectoryBackend, opts: CheckpointerOptions, floor: () => number, send: (msg: FromCheckpointer, transfer?: ArrayBuffer[]) => void) {
    this.#checkpointer = new Checkpointer(dir, opts, floor);
    this.#send = send;
  }

  get stats(): Checkpointer['stats'] {
    return this.#checkpointer.stats;
  }

  receive(msg: ToCheckpointer): void {
    if (msg.kind === 'close') {
      this.#checkpointer.close();
      this.#send({ kind: 'closed' });
      return;
    }
    if (this.#failed) return;
    try {
      if (msg.kind === 'checkpoint') {
        const r = this.#checkpointer.checkpoint({ upToSeq: msg.upToSeq, records: msg.records, batches: msg.batches });
        this.#send({
          kind: 'checkpointed', state: encodeState(r.state), releasedSeq: r.releasedSeq,
          ms: r.ms, pages: r.pages, runs: r.runs, ops: r.ops, stats: { ...this.#checkpointer.stats },
        });
      } else if (msg.kind === 'compact') {
        const r = msg.step === 'move' ? this.#checkpointer.compactMove() : this.#checkpointer.compactTrim();
        this.#send({ kind: 'compacted', state: encodeState(r.state), releasedSeq: r.releasedSeq, stats: { ...this.#checkpointer.stats } });
      } else {
        this.#checkpointer.finish();
        this.#send({ kind: 'finished', stats: { ...this.#checkpointer.stats } });
      }
    } catch (err) {
      this.#failed = true;
      this.#send({ kind: 'fatal', error: toWireError(err, 'checkpointer') });
    }
  }
}
