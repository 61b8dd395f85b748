// The layers import one way, each only from itself and the layers below it:
//   platform -> pager -> journal -> btree -> db -> api -> level -> bin
// The platform is the host (errors, the directory lock, process identity, the optional native
// module); the pager knows pages and files; the journal knows operations and sequence numbers, not trees;
// the trees know pages, not the journal; db (buffer, checkpoint, recovery) composes them; api is
// the threads and the public handle; level is birchdb/level (abstract-level over api's public
// API); nothing imports bin.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const ORDER = ['platform', 'pager', 'journal', 'btree', 'db', 'api', 'level', 'bin'];
// btree needs nothing of the journal: keep it that way.
const FORBIDDEN: Record<string, string[]> = { btree: ['journal'] };

function sources(dir: string): string[] {
  const files: string[] = [];
  const walk = (d: string): void => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(path.join(d, e.name));
      else if (e.name.endsWith('.ts')) files.push(path.join(d, e.name));
    }
  };
  walk(dir);
  return files;
}

describe('layers: imports point one way', () => {
  ORDER.forEach((layer, i) => {
    const allowed = ORDER.slice(0, i + 1).filter((l) => !(FORBIDDEN[layer] ?? []).includes(l));
    it(`${layer}/ imports only ${allowed.join(', ')}`, () => {
      const files = sources(path.join(root, layer));
      assert.ok(files.length > 0, `no sources found under ${layer}/`);
      for (const f of files) {
        for (const m of fs.readFileSync(f, 'utf8').matchAll(/from '(\.[^']+)'/g)) {
          const target = path.relative(root, path.resolve(path.dirname(f), m[1] as string)).split(path.sep)[0] as string;
          assert.ok(allowed.includes(target), `${path.relative(root, f)} imports ${m[1]} (layer ${target})`);
        }
      }
    });
  });

});
