// Branded ids so that a page number cannot be passed where a sequence number is expected.
//  - PageNo: a page of the data file (u32 on disk).
//  - Seq: a batch's sequence number. Every batch a caller submits gets the next one when it is
//    admitted; journal records hold consecutive ranges of them, and a checkpoint covers every
//    batch up to one of them. Persisted as u64 (a safe integer).
//  - CheckpointId: counts checkpoints; the meta page a checkpoint writes alternates with it.

export type PageNo = number & { readonly __brand: 'PageNo' };
export type Seq = number & { readonly __brand: 'Seq' };
export type CheckpointId = number & { readonly __brand: 'CheckpointId' };

/** Page numbers are u32 on disk: 2^32 pages of 4 KiB is a 16 TiB file. */
export const MAX_PAGE_NO = 0xffff_ffff;

export function pageNo(n: number): PageNo {
  if (!Number.isInteger(n) || n < 0 || n > MAX_PAGE_NO) throw new RangeError(`bad page number ${n}`);
  return n as PageNo;
}

export function seq(n: number): Seq {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`bad sequence number ${n}`);
  return n as Seq;
}

export function checkpointId(n: number): CheckpointId {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`bad checkpoint id ${n}`);
  return n as CheckpointId;
}
