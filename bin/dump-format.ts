// The dump format of `birch dump` / `birch load`: plain text, one entry per line, round-trippable.
//
//   birchdb-dump 1
//   <tree> TAB <key as hex> TAB <value as hex>
//   ...
//
// <tree> is `-` for the default tree, otherwise the tree's name with `%`, TAB, CR and LF (and only
// those) written as %25, %09, %0D, %0A. Keys and values are lowercase hex, so any bytes survive.
// Entries come tree by tree (default tree first), in key order; load accepts any order.

export const DUMP_HEADER = 'birchdb-dump 1';

export function encodeTreeName(tree: string | undefined): string {
  if (tree === undefined) return '-';
  return tree.replace(/[%\t\r\n]/g, (c) => `%${c.charCodeAt(0).toString(16).padStart(2, '0').toUpperCase()}`);
}

export function decodeTreeName(field: string): string | undefined {
  if (field === '-') return undefined;
  return field.replace(/%(25|09|0D|0A)/gi, (_, h: string) => String.fromCharCode(parseInt(h, 16)));
}

export function dumpLine(tree: string | undefined, key: Buffer, value: Buffer): string {
  return `${encodeTreeName(tree)}\t${key.toString('hex')}\t${value.toString('hex')}`;
}

export interface DumpEntry {
  tree: string | undefined;
  key: Buffer;
  value: Buffer;
}

const HEX = /^(?:[0-9a-f]{2})*$/;

/** Parses one entry line; throws with the line number on anything malformed. */
export function parseDumpLine(line: string, lineNo: number): DumpEntry {
  const parts = line.split('\t');
  if (parts.length !== 3) throw new Error(`line ${lineNo}: expected 3 tab-separated fields, found ${parts.length}`);
  const [tree, key, value] = parts as [string, string, string];
  if (!HEX.test(key) || key.length === 0) throw new Error(`line ${lineNo}: the key is not non-empty lowercase hex`);
  if (!HEX.test(value)) throw new Error(`line ${lineNo}: the value is not lowercase hex`);
  return { tree: decodeTreeName(tree), key: Buffer.from(key, 'hex'), value: Buffer.from(value, 'hex') };
}
