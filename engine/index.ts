// birchdb's public entry point: the async API (open, Birch) and the synchronous core (Database).
export { Database, DEFAULTS, type OpenOptions } from './database.js';
export { ReadTxn, WriteTxn, type RangeOptions } from './txn.js';
export type { CheckReport } from './verify.js';
export type { DatabaseStats, TreeStats } from './stats.js';
export { BirchError, CorruptionError, FatalIoError, type ErrorCode } from '../pager/errors.js';
export { MemoryDirectory, NodeDirectory, type DirectoryBackend, type FileBackend } from '../pager/backend.js';
export { MAX_KEY_BYTES, MAX_VALUE_BYTES, MAX_INLINE_LEAF_CELL } from './node-format.js';
export type { Bytes } from './input.js';
export type { AllocationPolicy, AllocationOptions } from '../pager/freelist.js';

export { open, Birch, Snapshot, Tree, type BirchOptions, type BatchOp, type BatchOptions, type BirchStats } from './birch.js';
