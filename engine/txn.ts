// Read and write transactions of the core API.
//  - A ReadTxn pins one committed state (a snapshot) until released: every read sees exactly that
//    commit, and the free list keeps every page it can reach.
//  - A WriteTxn builds the next state in its own dirty pages; commit() journals them and only then
//    publishes the state. There is at most one WriteTxn at a time.
import { BirchError } from '../pager/errors.js';
import type { PageNo, TxnId } from '../pager/ids.js';
import type { PageTxn } from '../pager/pager.js';
import { EMPTY_TREE, del, freeTree, get, put, type ReadPage, type TreeDesc } from './btree.js';
import { iterate, type RangeBounds } from './cursor.js';
import { toBound, toKey, toTreeName, toValue, type Bytes } from './input.js';
import { decodeDesc, encodeDesc, type Roots } from './roots-format.js';

export interface RangeOptions {
  gt?: Bytes;
  gte?: Bytes;
  lt?: Bytes;
  lte?: Bytes;
  prefix?: Bytes;
  reverse?: boolean;
  limit?: number;
}

/** What a transaction needs from its database. */
export interface TxnHost {
  readonly readPage: ReadPage;
  assertOpen(): void;
  releaseSnapshot(txn: TxnId): void;
  commitWrite(w: WriteTxn, pt: PageTxn, roots: Roots): TxnId;
  endWrite(w: WriteTxn): void;
}

function toRangeBounds(opts: RangeOptions): RangeBounds {
  if (typeof opts !== 'object' || opts === null) throw new BirchError('BAD_OPTION', 'range options must be an object');
  if (opts.limit !== undefined && (typeof opts.limit !== 'number' || Number.isNaN(opts.limit) || opts.limit < 0)) {
    throw new BirchError('BAD_OPTION', 'range option limit must be a non-negative number');
  }
  if (opts.reverse !== undefined && typeof opts.reverse !== 'boolean') throw new BirchError('BAD_OPTION', 'range option reverse must be a boolean');
  const b: RangeBounds = {};
  for (const name of ['gt', 'gte', 'lt', 'lte', 'prefix'] as const) {
    const v = toBound(opts[name], name);
    if (v !== undefined) b[name] = v;
  }
  if (opts.reverse !== undefined) b.reverse = opts.reverse;
  if (opts.limit !== undefined) b.limit = opts.limit;
  return b;
}

/** Looks a named tree up in the catalog; undefined names the default tree. */
function lookupTree(read: ReadPage, roots: Roots, tree: string | undefined): TreeDesc | undefined {
  if (tree === undefined) return roots.main;
  const raw = get(read, roots.catalog, Buffer.from(toTreeName(tree), 'utf8'));
  return raw === undefined ? undefined : decodeDesc(raw);
}

function treeNames(read: ReadPage, catalog: TreeDesc): string[] {
  const names: string[] = [];
  for (const [k] of iterate(read, catalog, {})) names.push(k.toString('utf8'));
  return names;
}

function notFound(tree: string): BirchError {
  return new BirchError('TREE_NOT_FOUND', `there is no tree named "${tree}"`);
}

export class ReadTxn {
  readonly txnId: TxnId;
  readonly #host: TxnHost;
  readonly #roots: Roots;
  #open = true;

  constructor(host: TxnHost, txnId: TxnId, roots: Roots) {
    this.#host = host;
    this.txnId = txnId;
    this.#roots = roots;
  }

  #check(): void {
    if (!this.#open) throw new BirchError('TXN_CLOSED', `read transaction at txn ${this.txnId} was released`);
    this.#host.assertOpen();
  }

  #tree(tree: string | undefined): TreeDesc {
    const desc = lookupTree(this.#host.readPage, this.#roots, tree);
    if (desc === undefined) throw notFound(tree as string);
    return desc;
  }

  get(key: Bytes, tree?: string): Buffer | undefined {
    this.#check();
    const k = toKey(key);
    return get(this.#host.readPage, this.#tree(tree), k);
  }

  /** Iterates [key, value] pairs; the transaction must stay unreleased while iterating. */
  *range(opts: RangeOptions = {}, tree?: string): Generator<[Buffer, Buffer]> {
    this.#check();
    const bounds = toRangeBounds(opts);
    const it = iterate(this.#host.readPage, this.#tree(tree), bounds);
    for (const entry of it) {
      yield entry;
      this.#check();
    }
  }

  hasTree(name: string): boolean {
    this.#check();
    return lookupTree(this.#host.readPage, this.#roots, toTreeName(name)) !== undefined;
  }

  /** True for the default tree (undefined) and for a named tree that exists. */
  hasTreeOrDefault(tree: string | undefined): boolean {
    return tree === undefined || this.hasTree(tree);
  }

  trees(): string[] {
    this.#check();
    return treeNames(this.#host.readPage, this.#roots.catalog);
  }

  /** Entry count of a tree, from its descriptor. */
  count(tree?: string): number {
    this.#check();
    return this.#tree(tree).entries;
  }

  get released(): boolean {
    return !this.#open;
  }

  release(): void {
    if (!this.#open) return;
    this.#open = false;
    this.#host.releaseSnapshot(this.txnId);
  }
}

export class WriteTxn {
  readonly #host: TxnHost;
  readonly #pt: PageTxn;
  #main: TreeDesc;
  #catalog: TreeDesc;
  /** Named trees touched by this txn: their new descriptor, or null if dropped. */
  readonly #named = new Map<string, TreeDesc | null>();
  #open = true;
  readonly #read: ReadPage;

  constructor(host: TxnHost, pt: PageTxn, roots: Roots) {
    this.#host = host;
    this.#pt = pt;
    this.#main = roots.main;
    this.#catalog = roots.catalog;
    this.#read = (no: PageNo) => pt.page(no);
  }

  get txnId(): TxnId {
    return this.#pt.id;
  }

  #check(): void {
    if (!this.#open) throw new BirchError('TXN_CLOSED', `write transaction ${this.#pt.id} is already committed or aborted`);
    this.#host.assertOpen();
  }

  #tree(tree: string | undefined): TreeDesc | undefined {
    if (tree === undefined) return this.#main;
    const name = toTreeName(tree);
    const touched = this.#named.get(name);
    if (touched !== undefined) return touched ?? undefined;
    return lookupTree(this.#read, { main: this.#main, catalog: this.#catalog }, name);
  }

  #setTree(tree: string | undefined, desc: TreeDesc): void {
    if (tree === undefined) this.#main = desc;
    else this.#named.set(tree, desc);
  }

  get(key: Bytes, tree?: string): Buffer | undefined {
    this.#check();
    const k = toKey(key);
    const desc = this.#tree(tree);
    if (desc === undefined) throw notFound(tree as string);
    return get(this.#read, desc, k);
  }

  /** Inserts or replaces; a named tree that does not exist yet is created. */
  put(key: Bytes, value: Bytes, tree?: string): void {
    this.#check();
    const k = toKey(key);
    const v = toValue(value);
    const desc = this.#tree(tree) ?? EMPTY_TREE;
    this.#setTree(tree, put(this.#pt, desc, k, v));
  }

  /** Deletes `key`; returns whether it was present. */
  del(key: Bytes, tree?: string): boolean {
    this.#check();
    const k = toKey(key);
    const desc = this.#tree(tree);
    if (desc === undefined) throw notFound(tree as string);
    const next = del(this.#pt, desc, k);
    if (next === undefined) return false;
    this.#setTree(tree, next);
    return true;
  }

  /** Iterates this transaction's own view; do not modify the tree while iterating. */
  *range(opts: RangeOptions = {}, tree?: string): Generator<[Buffer, Buffer]> {
    this.#check();
    const bounds = toRangeBounds(opts);
    const desc = this.#tree(tree);
    if (desc === undefined) throw notFound(tree as string);
    yield* iterate(this.#read, desc, bounds);
  }

  /** Creates an empty named tree if it does not exist; returns whether it was created. */
  createTree(name: string): boolean {
    this.#check();
    const n = toTreeName(name);
    if (this.#tree(n) !== undefined) return false;
    this.#named.set(n, EMPTY_TREE);
    return true;
  }

  /** Drops a named tree and frees all its pages; returns whether it existed. */
  dropTree(name: string): boolean {
    this.#check();
    const n = toTreeName(name);
    const desc = this.#tree(n);
    if (desc === undefined) return false;
    freeTree(this.#pt, desc);
    this.#named.set(n, null);
    return true;
  }

  hasTree(name: string): boolean {
    this.#check();
    return this.#tree(toTreeName(name)) !== undefined;
  }

  trees(): string[] {
    this.#check();
    const names = new Set(treeNames(this.#read, this.#catalog));
    for (const [n, d] of this.#named) {
      if (d === null) names.delete(n);
      else names.add(n);
    }
    return [...names].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  }

  count(tree?: string): number {
    this.#check();
    const desc = this.#tree(tree);
    if (desc === undefined) throw notFound(tree as string);
    return desc.entries;
  }

  /** Journals the transaction and publishes it; returns its txn id. */
  commit(): TxnId {
    this.#check();
    // Fold the touched named trees into the catalog; the catalog itself is copy-on-write too.
    for (const [name, desc] of this.#named) {
      const key = Buffer.from(name, 'utf8');
      if (desc === null) this.#catalog = del(this.#pt, this.#catalog, key) ?? this.#catalog;
      else this.#catalog = put(this.#pt, this.#catalog, key, encodeDesc(desc));
    }
    this.#open = false;
    try {
      return this.#host.commitWrite(this, this.#pt, { main: this.#main, catalog: this.#catalog });
    } finally {
      this.#host.endWrite(this);
    }
  }

  abort(): void {
    if (!this.#open) return;
    this.#open = false;
    this.#pt.rollback();
    this.#host.endWrite(this);
  }

  get open(): boolean {
    return this.#open;
  }
}
