// A named tree's calls: db.tree(name) binds the tree option of every read and write to one name.
import type { Birch, BatchOp, BatchOptions } from './birch.js';
import type { Bytes } from './input.js';
import type { RangeOptions } from './reads.js';

/** The read and write calls of one named tree. */
export class Tree {
  readonly name: string;
  readonly #db: Birch;
  /** @internal db.tree(name) makes these. */
  constructor(db: Birch, name: string) {
    this.#db = db;
    this.name = name;
  }
  get(key: Bytes): Buffer | undefined {
    return this.#db.get(key, { tree: this.name });
  }
  getMany(keys: readonly Bytes[]): (Buffer | undefined)[] {
    return this.#db.getMany(keys, { tree: this.name });
  }
  getView(key: Bytes): Buffer | undefined {
    return this.#db.getView(key, { tree: this.name });
  }
  range(opts: Omit<RangeOptions, 'tree'> = {}): IterableIterator<[Buffer, Buffer]> {
    return this.#db.range({ ...opts, tree: this.name });
  }
  put(key: Bytes, value: Bytes): Promise<void> {
    return this.#db.put(key, value, { tree: this.name });
  }
  del(key: Bytes): Promise<void> {
    return this.#db.del(key, { tree: this.name });
  }
  batch(ops: BatchOp[], opts?: BatchOptions): Promise<void> {
    return this.#db.batch(ops.map((o) => ({ tree: this.name, ...o })), opts);
  }
}
