// check(): the whole-database verifier that tests run after checkpoints and `birch check` prints.
// It proves, for the trees of one checkpoint:
//  - every page from FIRST_DATA_PAGE to pageCount-1 is reachable exactly once (from a tree, an
//    overflow run or the free-list chain) or is recorded free, never both, never neither (no leak);
//  - every reachable page passes its checksum (read from the data file, bypassing any cache) and
//    has the right kind;
//  - keys are strictly ascending within and across pages, separators bound their children, all
//    leaves sit at the tree's depth, and entry counts match the descriptors;
//  - the checkpointer's in-memory free list, where given, agrees with the one on disk.
import { CorruptionError } from '../platform/errors.js';
import { pageNo, type PageNo } from '../pager/ids.js';
import { FIRST_DATA_PAGE, PAGE_KIND_NAMES, PageKind, pageKind } from '../pager/page-format.js';
import { decodeFreeList } from '../pager/freelist.js';
import type { DbState } from '../pager/meta-format.js';
import { readValue, type TreeDesc } from './tree.js';
import { childAt, count, keyAt, leafValue, usedBytes } from './node.js';
import { NODE_CAPACITY, overflowPagesFor } from './node-format.js';
import { decodeCatalogValue, type Roots } from './roots-format.js';
import { DATA_FILE } from '../pager/data-file.js';

export interface CheckReport {
  ok: boolean;
  errors: string[];
  /** The checkpoint checked, and the last batch its trees hold. */
  checkpointId: number;
  seq: number;
  pageCount: number;
  pages: { reachable: number; free: number; leaf: number; branch: number; overflow: number; freeList: number };
  /** The user's trees: the default one and every named one (the catalog not counted). */
  trees: number;
}

const MAX_ERRORS = 100;

/** What the verifier reads: a state, and its pages, verified against their checksums. */
export interface CheckSource {
  state: DbState;
  /** The page, read afresh from disk and checksum-verified. */
  verifiedRead: (no: PageNo) => Buffer;
  /** Free plus pending pages in the checkpointer's memory, to compare with the list on disk. */
  memoryFreePages?: number;
}

export function checkDatabase(src: CheckSource, roots: Roots): CheckReport {
  const state = src.state;
  const errors: string[] = [];
  const report: CheckReport = {
    ok: true, errors, checkpointId: state.checkpointId, seq: state.seq, pageCount: state.pageCount,
    pages: { reachable: 0, free: 0, leaf: 0, branch: 0, overflow: 0, freeList: 0 }, trees: 0,
  };
  const owner = new Map<number, string>();
  const err = (msg: string): void => {
    if (errors.length < MAX_ERRORS) errors.push(msg);
  };
  const read = src.verifiedRead;
  const claim = (no: number, what: string): boolean => {
    if (no < FIRST_DATA_PAGE || no >= state.pageCount) {
      err(`${what}: page ${no} is outside the data pages [${FIRST_DATA_PAGE}, ${state.pageCount})`);
      return false;
    }
    const prev = owner.get(no);
    if (prev !== undefined) {
      err(`page ${no} is claimed twice: by ${prev} and by ${what}`);
      return false;
    }
    owner.set(no, what);
    return true;
  };
  const load = (no: number, what: string, kind: PageKind): Buffer | undefined => {
    if (!claim(no, what)) return undefined;
    try {
      const buf = read(pageNo(no));
      if (pageKind(buf) !== kind) {
        err(`${what}: page ${no} is a ${PAGE_KIND_NAMES[pageKind(buf)] ?? `kind ${pageKind(buf)}`} page, expected ${PAGE_KIND_NAMES[kind]}`);
        return undefined;
      }
      return buf;
    } catch (e) {
      err(e instanceof CorruptionError ? `${what}: ${e.message}` : `${what}: cannot read page ${no}: ${String(e)}`);
      return undefined;
    }
  };

  const walkTree = (name: string, desc: TreeDesc, onLeafEntry?: (key: Buffer, value: Buffer) => void): void => {
    // The catalog is how named trees are found, not a tree of the user's.
    if (onLeafEntry === undefined) report.trees++;
    if (desc.root === 0) {
      if (desc.depth !== 0 || desc.entries !== 0) err(`tree ${name}: empty tree has depth ${desc.depth}, ${desc.entries} entries`);
      return;
    }
    let entries = 0;
    let lastKey: Buffer | undefined;
    const visit = (no: number, level: number, lower: Buffer | undefined, upper: Buffer | undefined): void => {
      const leafLevel = level === desc.depth;
      const what = `tree ${name} ${leafLevel ? 'leaf' : 'branch'}`;
      const buf = load(no, what, leafLevel ? PageKind.Leaf : PageKind.Branch);
      if (buf === undefined) return;
      const n = count(buf);
      if (n === 0) err(`${what} page ${no} is empty`);
      if (usedBytes(buf) > NODE_CAPACITY) err(`${what} page ${no} claims more bytes than a page holds`);
      if (leafLevel) {
        report.pages.leaf++;
        for (let i = 0; i < n; i++) {
          const key = keyAt(buf, i, true);
          if (key.length === 0) err(`${what} page ${no} slot ${i} has an empty key`);
          if (lastKey !== undefined && Buffer.compare(lastKey, key) >= 0) err(`${what} page ${no} slot ${i}: keys out of order`);
          if (lower !== undefined && Buffer.compare(key, lower) < 0) err(`${what} page ${no} slot ${i}: key below its separator`);
          if (upper !== undefined && Buffer.compare(key, upper) >= 0) err(`${what} page ${no} slot ${i}: key not below the next separator`);
          lastKey = Buffer.from(key);
          const ref = leafValue(buf, i);
          if (ref.overflow) {
            const pages = overflowPagesFor(ref.valueLen);
            for (let k = 0; k < pages; k++) {
              if (load(ref.at + k, `tree ${name} overflow value`, PageKind.Overflow) !== undefined) report.pages.overflow++;
            }
          }
          if (onLeafEntry !== undefined) {
            try {
              onLeafEntry(lastKey, readValue((p) => read(p), buf, i));
            } catch (e) {
              err(`tree ${name}: entry in page ${no} slot ${i}: ${String(e)}`);
            }
          }
          entries++;
        }
        return;
      }
      report.pages.branch++;
      if (level === 1 && n < 2) err(`${what}: root branch page ${no} has ${n} child`);
      for (let i = 0; i < n; i++) {
        const lo = i === 0 ? lower : Buffer.from(keyAt(buf, i, false));
        const hi = i + 1 < n ? Buffer.from(keyAt(buf, i + 1, false)) : upper;
        if (i > 0 && lower !== undefined && lo !== undefined && Buffer.compare(lo, lower) < 0) err(`${what} page ${no}: separator ${i} below its own bound`);
        if (i > 0 && upper !== undefined && lo !== undefined && Buffer.compare(lo, upper) >= 0) err(`${what} page ${no}: separator ${i} not below its upper bound`);
        if (lo !== undefined && hi !== undefined && i > 0 && Buffer.compare(lo, hi) >= 0) err(`${what} page ${no}: separators out of order at ${i}`);
        visit(childAt(buf, i), level + 1, lo, hi);
      }
    };
    visit(desc.root, 1, undefined, undefined);
    if (entries !== desc.entries) err(`tree ${name}: descriptor says ${desc.entries} entries, found ${entries}`);
  };

  walkTree('(default)', roots.main);
  const named: [string, TreeDesc][] = [];
  walkTree('(catalog)', roots.catalog, (k, v) => named.push([k.toString('utf8'), decodeCatalogValue(v, k.toString('utf8'), { file: DATA_FILE })]));
  for (const [name, desc] of named) walkTree(`"${name}"`, desc);

  // The free list as the newest state records it, then the in-memory one against it.
  let freeRuns: ReturnType<typeof decodeFreeList>['runs'] | undefined;
  try {
    const decoded = decodeFreeList(state.freeRoot, state.pageCount, (no) => {
      if (claim(no, 'free-list chain')) report.pages.freeList++;
      return read(no);
    });
    freeRuns = decoded.runs;
  } catch (e) {
    err(`free list: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (freeRuns !== undefined) {
    for (const [start, len] of freeRuns.runs()) {
      for (let p = start; p < start + len; p++) {
        const prev = owner.get(p);
        if (prev !== undefined) err(`page ${p} is both free and used by ${prev}`);
        else owner.set(p, 'free');
        report.pages.free++;
      }
    }
    if (src.memoryFreePages !== undefined && src.memoryFreePages !== freeRuns.pages) {
      err(`the in-memory free list holds ${src.memoryFreePages} pages, the one on disk ${freeRuns.pages}`);
    }
  }
  for (let p = FIRST_DATA_PAGE; p < state.pageCount; p++) {
    if (!owner.has(p)) err(`page ${p} is neither reachable nor free (leaked)`);
  }
  report.pages.reachable = owner.size - report.pages.free;
  report.ok = errors.length === 0;
  return report;
}
