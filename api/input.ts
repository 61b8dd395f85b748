// Validation of what callers pass in. Public methods call these before touching anything, so a
// bad argument throws a typed error and nothing is written.
import { BirchError } from '../platform/errors.js';
import { MAX_KEY_BYTES, MAX_VALUE_BYTES } from '../btree/node-format.js';
import { asBytes } from '../pager/bytes.js';

export type Bytes = Uint8Array | string;

export const MAX_TREE_NAME_BYTES = 255;

export function toKey(k: unknown): Buffer {
  const b = asBytes(k);
  if (b === undefined) throw new BirchError('KEY_INVALID', `a key must be a Uint8Array or a string, not ${describe(k)}`);
  if (b.length === 0) throw new BirchError('KEY_INVALID', 'a key must not be empty');
  if (b.length > MAX_KEY_BYTES) throw new BirchError('KEY_INVALID', `a key is at most ${MAX_KEY_BYTES} bytes; this one is ${b.length}`);
  return b;
}

export function toValue(v: unknown): Buffer {
  const b = asBytes(v);
  if (b === undefined) throw new BirchError('VALUE_INVALID', `a value must be a Uint8Array or a string, not ${describe(v)}`);
  if (b.length > MAX_VALUE_BYTES) throw new BirchError('VALUE_INVALID', `a value is at most ${MAX_VALUE_BYTES} bytes; this one is ${b.length}`);
  return b;
}

/** Bounds for range(): keys may be any length here (a bound need not be a valid key), but not empty types. */
export function toBound(v: unknown, name: string): Buffer | undefined {
  if (v === undefined) return undefined;
  const b = asBytes(v);
  if (b === undefined) throw new BirchError('BAD_OPTION', `range option ${name} must be a Uint8Array or a string, not ${describe(v)}`);
  return b;
}

/** Any surrogate code unit: only a name that has one can be ill-formed (reads pass names often: the round trip is not paid for the rest). */
const SURROGATE = /[\uD800-\uDFFF]/;

export function toTreeName(name: unknown): string {
  if (typeof name !== 'string') throw new BirchError('TREE_NAME_INVALID', `a tree name must be a string, not ${describe(name)}`);
  const bytes = Buffer.byteLength(name, 'utf8');
  if (bytes === 0 || bytes > MAX_TREE_NAME_BYTES) throw new BirchError('TREE_NAME_INVALID', `a tree name is 1 to ${MAX_TREE_NAME_BYTES} bytes; "${name.slice(0, 40)}" is ${bytes}`);
  // A name is stored as UTF-8 and read back from it (the journal, the write buffer, the catalog):
  // a lone surrogate would come back as U+FFFD, another name than the caller's.
  if (SURROGATE.test(name) && Buffer.from(name, 'utf8').toString('utf8') !== name) throw new BirchError('TREE_NAME_INVALID', `a tree name must be well-formed Unicode; "${name.slice(0, 40)}" has a lone surrogate`);
  return name;
}

/** What `v` is, for a message that says what was expected instead: "undefined (missing)", "a number", "an object (Date)". */
export function describe(v: unknown): string {
  if (v === null) return 'null';
  if (v === undefined) return 'undefined (missing)';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'object') return `an object (${(v as object).constructor?.name ?? 'Object'})`;
  return `a ${typeof v}`; // number, string, boolean, bigint, symbol, function: all take 'a'
}

/**
 * Refuses option names not in `known`: in plain JavaScript a typo (`cachesize`, `prefx`) would
 * otherwise change behaviour silently (defaults, a full scan). The error names the option and the
 * closest known one. `for...in` keeps the check free of allocation on hot calls (get with a tree).
 */
export function checkOptionNames(o: object, known: readonly string[], where: string): void {
  for (const k in o) if (!known.includes(k)) throw unknownOption(k, known, where);
}

function unknownOption(name: string, known: readonly string[], where: string): BirchError {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const k of known) {
    const d = editDistance(name.toLowerCase(), k.toLowerCase());
    if (d < bestDistance) {
      bestDistance = d;
      best = k;
    }
  }
  const close = best !== undefined && bestDistance <= Math.max(2, Math.floor(best.length / 3));
  return new BirchError('BAD_OPTION', `unknown option '${name}' of ${where}; ${close ? `did you mean '${best}'?` : `the options are ${known.join(', ')}`}`);
}

/** Levenshtein distance (insertions, deletions, substitutions), for "did you mean". */
function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min((prev[j] as number) + 1, (cur[j - 1] as number) + 1, (prev[j - 1] as number) + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length] as number;
}

const TREE_OPTION = ['tree'] as const;

/** The tree named by the options of a point call (get, put, del...): '' for the default tree. */
export function treeOption(opts: unknown, where: string): string {
  if (opts === undefined) return '';
  if (typeof opts !== 'object' || opts === null) throw new BirchError('BAD_OPTION', `the options of ${where} must be an object, not ${describe(opts)}`);
  checkOptionNames(opts, TREE_OPTION, where);
  const tree = (opts as { tree?: unknown }).tree;
  return tree === undefined ? '' : toTreeName(tree);
}
