// birchdb's public entry point.
export { open, Birch, Tree, type BatchOp, type BatchOptions, type BirchStats, type BirchImplementation, type CompactResult } from './birch.js';
export { Snapshot, type RangeOptions } from './reads.js';
export { openReader, BirchReader, ReaderSnapshot } from './reader.js';
export type { ReaderHandle } from './reader-handles.js';
export type { BackupOptions, BackupProgress, BackupResult } from './backup.js';
export type { RangeIterator } from '../db/range.js';
export { DEFAULTS, DEFAULT_CHECKPOINT_BYTES, defaultCacheSize, type BirchOptions } from './options.js';
export type { CheckReport } from '../btree/verify.js';
export type { TreeStats } from '../btree/shape.js';
export { BirchError, CorruptionError, FatalIoError, type ErrorCode, type ErrorSite } from '../pager/errors.js';
export { MemoryDirectory, NodeDirectory, type DirectoryBackend, type FileBackend, type HeldLock } from '../pager/backend.js';
export { MAX_KEY_BYTES, MAX_VALUE_BYTES, MAX_INLINE_LEAF_CELL } from '../btree/node-format.js';
export { ENTRY_OVERHEAD_BYTES } from '../db/buffer.js';
export type { Bytes } from './input.js';
export type { RuntimeInfo } from './runtime.js';
export type { LockMode } from '../pager/lock.js';
export type { AllocationPolicy, AllocationOptions } from '../pager/freelist.js';
export type { FaultPlan } from '../pager/faults.js';
