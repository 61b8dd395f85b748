// birchdb/level: birchdb behind abstract-level's interface (level/birch-level.ts). Import it only
// if abstract-level is installed: it is an optional peer dependency of birchdb.
export { BirchLevel, BirchLevelIterator, BirchLevelKeyIterator, BirchLevelValueIterator, BirchLevelSnapshot, EMPTY_KEY_TREE, type BirchLevelOptions } from './birch-level.js';
