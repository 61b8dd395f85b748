// A batch as the caller hands it in, checked and copied once into the journal's layout: the
// bytes the writer writes as they are and the write buffer keeps (keys and values point into
// them), plus where each operation's key and value lie. A bad part of any operation refuses the
// whole batch with a typed error before anything is admitted.
import { BirchError } from '../platform/errors.js';
import { OP_DEL, OP_DROP_TREE, OP_PUT, opBytes, writeOp, type OpType } from '../journal/format.js';
import { checkOptionNames, describe, toKey, toTreeName, toValue, type Bytes } from './input.js';
import { treeOf } from './reads.js';
import type { BatchArena } from './batch-arena.js';

export type BatchOp =
  | { type: 'put'; key: Bytes; value: Bytes; tree?: string }
  | { type: 'del'; key: Bytes; tree?: string };

export interface BatchOptions {
  /** Apply the batch only if every listed key holds `value` now (`undefined`: is absent). */
  ifMatch?: { key: Bytes; value: Bytes | undefined; tree?: string }[];
}

const BATCH_OP_FIELDS = ['type', 'key', 'value', 'tree'] as const;
const IF_MATCH_FIELDS = ['key', 'value', 'tree'] as const;

/** A key for a message: as text if it is printable ASCII (quoted), else as hex. */
export function describeKey(key: Buffer): string {
  const shown = key.subarray(0, 64);
  const more = key.length > 64 ? `... (${key.length} bytes)` : '';
  for (const b of shown) if (b < 0x20 || b > 0x7e) return `0x${shown.toString('hex')}${more}`;
  return `"${shown.toString('latin1')}"${more}`;
}

export interface InputCond {
  tree: string;
  key: Buffer;
  value: Buffer | undefined;
}

/**
 * A batch encoded: how many operations, the tree it drops (dropTree() only), its conditions, and
 * its bytes in the journal's layout (`len` at `off` of its arena chunk `buf`), which is all the
 * write buffer and the writer need of it (db/buffer.ts applyOps reads the operations from them).
 */
export interface EncodedBatch {
  count: number;
  drop?: string;
  conds: InputCond[];
  buf: Buffer;
  off: number;
  len: number;
}

/**
 * One put or delete, checked and encoded like a batch of one operation, without building the
 * operation object and array that batch() takes (put() and del()).
 */
export function encodeOne(type: typeof OP_PUT | typeof OP_DEL, key: unknown, value: unknown, tree: string, arena: BatchArena): EncodedBatch {
  const k = toKey(key);
  const v = type === OP_PUT ? toValue(value) : undefined;
  const t = tree === '' ? undefined : Buffer.from(tree, 'utf8');
  const len = opBytes(t?.length ?? 0, k.length, v?.length ?? 0);
  const off = arena.take(len);
  writeOp(arena.buf, off, type, t, k, v);
  return { count: 1, conds: NO_CONDS, buf: arena.buf, off, len };
}

/** The conditions of a batch that has none: shared, never changed. */
const NO_CONDS: InputCond[] = [];

export function encodeBatch(ops: unknown, opts: unknown, arena: BatchArena): EncodedBatch {
  if (!Array.isArray(ops)) throw new BirchError('BAD_OPTION', `batch() takes an array of operations, not ${describe(ops)}`);
  const n = ops.length;
  const types: OpType[] = new Array(n);
  const trees: string[] = new Array(n);
  const keys: Buffer[] = new Array(n);
  const values: (Buffer | undefined)[] = new Array(n);
  let treeBytes: Map<string, Buffer> | undefined;
  let total = 0;
  for (let i = 0; i < n; i++) {
    const op: unknown = ops[i];
    if (typeof op !== 'object' || op === null) throw new BirchError('BAD_OPTION', `operation ${i} is not an object`);
    checkOptionNames(op, BATCH_OP_FIELDS, `batch operation ${i}`);
    const o = op as { type?: unknown; key?: unknown; value?: unknown; tree?: unknown };
    const tree = treeOf(o.tree);
    let treeLen = 0;
    if (tree !== '') {
      treeBytes ??= new Map();
      let b = treeBytes.get(tree);
      if (b === undefined) treeBytes.set(tree, (b = Buffer.from(tree, 'utf8')));
      treeLen = b.length;
    }
    const key = toKey(o.key);
    let value: Buffer | undefined;
    if (o.type === 'put') {
      types[i] = OP_PUT;
      value = toValue(o.value);
    } else if (o.type === 'del') types[i] = OP_DEL;
    else throw new BirchError('BAD_OPTION', `operation ${i} has type ${String(o.type)}; expected 'put' or 'del'`);
    trees[i] = tree;
    keys[i] = key;
    values[i] = value;
    total += opBytes(treeLen, key.length, value?.length ?? 0);
  }
  const conds: InputCond[] = [];
  if (opts !== undefined) {
    if (typeof opts !== 'object' || opts === null) throw new BirchError('BAD_OPTION', 'batch options must be an object');
    checkOptionNames(opts, ['ifMatch'], 'batch()');
    const ifMatch = (opts as { ifMatch?: unknown }).ifMatch;
    if (ifMatch !== undefined) {
      if (!Array.isArray(ifMatch)) throw new BirchError('BAD_OPTION', 'ifMatch must be an array');
      for (const c of ifMatch as unknown[]) {
        if (typeof c !== 'object' || c === null || !('key' in c)) throw new BirchError('BAD_OPTION', 'each ifMatch entry needs a key and a value');
        checkOptionNames(c, IF_MATCH_FIELDS, 'an ifMatch entry');
        const e = c as { key: unknown; value?: unknown; tree?: unknown };
        // Copies: the condition is decided later, at admission.
        conds.push({ tree: treeOf(e.tree), key: Buffer.from(toKey(e.key)), value: e.value === undefined ? undefined : Buffer.from(toValue(e.value)) });
      }
    }
  }
  // One copy of every key and value, in the journal's layout: later changes to the caller's
  // buffers change nothing, and the writer writes these bytes as they are.
  const off = arena.take(total);
  const buf = arena.buf;
  let at = off;
  for (let i = 0; i < n; i++) {
    const tree = trees[i] as string;
    at = writeOp(buf, at, types[i] as OpType, tree === '' ? undefined : treeBytes?.get(tree), keys[i] as Buffer, values[i]);
  }
  return { count: n, conds, buf, off, len: total };
}

/** dropTree(name): one operation that names the tree; admission checks that the tree exists. */
export function encodeDropTree(name: unknown, arena: BatchArena): EncodedBatch {
  const tree = toTreeName(name);
  const treeBytes = Buffer.from(tree, 'utf8');
  const len = opBytes(treeBytes.length, 0, 0);
  const off = arena.take(len);
  writeOp(arena.buf, off, OP_DROP_TREE, treeBytes, undefined, undefined);
  return { count: 1, drop: tree, conds: [], buf: arena.buf, off, len };
}
