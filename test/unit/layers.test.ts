// The layers import one way: bin -> engine -> journal -> pager (and engine -> pager). The pager
// knows nothing of the journal or trees; the journal knows pages, not trees; nothing imports bin.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const ALLOWED: Record<string, string[]> = {
  pager: ['pager'],
  journal: ['journal', 'pager'],
  engine: ['engine', 'journal', 'pager'],
  bin: ['bin', 'engine', 'journal', 'pager'],
};

describe('layers: imports point one way', () => {
  for (const [layer, allowed] of Object.entries(ALLOWED)) {
    it(`${layer}/ imports only ${allowed.join(', ')}`, () => {
      const dir = path.join(root, layer);
      const files: string[] = [];
      const walk = (d: string): void => {
        for (const e of fs.readdirSync(d, { withFileTypes: true })) {
          if (e.isDirectory()) walk(path.join(d, e.name));
          else if (e.name.endsWith('.ts')) files.push(path.join(d, e.name));
        }
      };
      walk(dir);
      assert.ok(files.length > 0, `no sources found under ${dir}`);
      for (const f of files) {
        for (const m of fs.readFileSync(f, 'utf8').matchAll(/from '(\.[^']+)'/g)) {
          const target = path.relative(root, path.resolve(path.dirname(f), m[1] as string)).split(path.sep)[0] as string;
          assert.ok(allowed.includes(target), `${path.relative(root, f)} imports ${m[1]} (layer ${target})`);
        }
      }
    });
  }
});
