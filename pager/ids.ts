// Branded ids so that a page number cannot be passed where a transaction id is expected.

export type PageNo = number & { readonly __brand: 'PageNo' };
export type TxnId = number & { readonly __brand: 'TxnId' };

/** Page numbers are u32 on disk: 2^32 pages of 4 KiB is a 16 TiB file. */
export const MAX_PAGE_NO = 0xffff_ffff;

export function pageNo(n: number): PageNo {
  if (!Number.isInteger(n) || n < 0 || n > MAX_PAGE_NO) throw new RangeError(`bad page number ${n}`);
  return n as PageNo;
}

export function txnId(n: number): TxnId {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`bad txn id ${n}`);
  return n as TxnId;
}
