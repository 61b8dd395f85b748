// The pages of the concurrent-eviction test: each page's bytes are a function of its number, so a
// reader can tell, byte by byte, whether a frame holds the page it asked for.
import { PAGE_SIZE, PageKind, initPage, sealPage } from '../../pager/page-format.js';
import { GENERIC_HEADER_SIZE } from '../../pager/page-format.js';
import { pageNo } from '../../pager/ids.js';
import { checksum } from '../../pager/checksum.js';

export interface EvictionReport {
  reads: number;
  wrong: number;
  installs: number;
  removes: number;
  firstWrong: string;
}

export function expectedPage(no: number): Buffer {
  const page = Buffer.alloc(PAGE_SIZE);
  initPage(page, pageNo(no), PageKind.Leaf);
  for (let i = GENERIC_HEADER_SIZE; i < PAGE_SIZE; i++) page[i] = (no * 31 + i * 7) & 0xff;
  sealPage(page);
  return page;
}

/**
 * Why the frame at `off` is not page `no` (its number, its checksum, its every byte), or
 * undefined. Reads the whole page, slowly, so that an eviction racing with the reader would have
 * time to overwrite it.
 */
export function checkFrame(bytes: Buffer, off: number, no: number): string | undefined {
  if (bytes.readUInt32LE(off + 4) !== no) return `page ${no}: frame holds page ${bytes.readUInt32LE(off + 4)}`;
  for (let i = GENERIC_HEADER_SIZE; i < PAGE_SIZE; i++) {
    if (bytes[off + i] !== ((no * 31 + i * 7) & 0xff)) return `page ${no}: byte ${i} differs`;
  }
  if (checksum(bytes, off + 4, off + PAGE_SIZE) !== bytes.readUInt32LE(off)) return `page ${no}: checksum`;
  // Once more after the long read: a frame reused meanwhile shows another page number now.
  if (bytes.readUInt32LE(off + 4) !== no) return `page ${no}: frame changed while read`;
  return undefined;
}
