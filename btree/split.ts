// Keys that cut a tree into key ranges of about equal numbers of pages, for work done in parallel
// (export): the separators of its top branch levels, read level by level until there are enough.
// The ranges follow the tree's shape, so they differ between two trees of the same entries; use
// them to share work out, never to decide what the result holds.
import { childAt, count, isBranch, keyAt } from './node.js';
import type { PageNo } from '../pager/ids.js';
import type { ReadPage, TreeDesc } from './tree.js';

/** At most `parts - 1` keys in ascending order (none for a tree of one leaf or less). */
export function splitKeys(read: ReadPage, desc: TreeDesc, parts: number): Buffer[] {
  if (desc.root === 0 || parts <= 1) return [];
  let level: number[] = [desc.root];
  let keys: Buffer[] = [];
  for (;;) {
    const next: number[] = [];
    const found: Buffer[] = [];
    for (const no of level) {
      const page = read(no as PageNo);
      if (!isBranch(page)) return pick(keys, parts);
      const n = count(page);
      // Slot 0's key stands for "everything below": the parent level's separator, already found.
      for (let i = 0; i < n; i++) {
        if (i > 0) found.push(Buffer.from(keyAt(page, i, false)));
        next.push(childAt(page, i));
      }
    }
    keys = [...keys, ...found].sort(Buffer.compare);
    if (keys.length + 1 >= parts) return pick(keys, parts);
    level = next;
  }
}

/** `parts - 1` of `keys`, evenly spaced (all of them if there are fewer). */
function pick(keys: Buffer[], parts: number): Buffer[] {
  if (keys.length < parts) return keys;
  const out: Buffer[] = [];
  for (let p = 1; p < parts; p++) out.push(keys[Math.floor((p * keys.length) / parts)] as Buffer);
  return out;
}
