// Builds the CommonJS entry point after tsc has built the ES modules (npm run build, prepare):
//
//   dist/cjs/api/index.cjs   the library (api/index.ts and every layer under it) bundled by esbuild
//                            into one CommonJS file; dependencies stay require()s.
//   dist/cjs/level/index.cjs birchdb/level (level/index.ts), which require()s the file above for
//                            the engine (one copy of it, whichever entry is loaded first) and
//                            abstract-level, the optional peer dependency.
//   dist/cjs/**/*.d.ts       tsc's declarations, copied under a package.json that says
//                            "commonjs", so that TypeScript reads them as CommonJS types.
//
// The worker threads stay ES modules (a thread is a module of its own, whichever format started
// it), so the bundle's import.meta.url points at dist/api/index.js: the writer and checkpointer
// files and the fs-ext lookup resolve from there, as they do in the ES build.
import { build } from 'esbuild';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const out = path.join(root, 'dist', 'cjs');
const LAYERS = ['platform', 'pager', 'journal', 'btree', 'db', 'api', 'level'];

fs.rmSync(out, { recursive: true, force: true });
/** One entry point bundled into out/<dir>/index.cjs; dependencies stay require()s. */
const bundle = (dir, extra) =>
  build({
    entryPoints: [path.join(root, dir, 'index.ts')],
    outfile: path.join(out, dir, 'index.cjs'),
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    packages: 'external',
    logLevel: 'warning',
    ...extra,
  });

await bundle('api', {
  define: { 'import.meta.url': '__birchEsmUrl' },
  banner: { js: "const __birchEsmUrl = require('node:url').pathToFileURL(require('node:path').join(__dirname, '..', '..', 'api', 'index.js')).href;" },
});
await bundle('level', {
  plugins: [
    {
      name: 'engine-external',
      setup(b) {
        // The engine is not bundled twice: the adapter's import of the public API is the CommonJS entry's.
        b.onResolve({ filter: /\/api\/index\.js$/ }, () => ({ path: '../api/index.cjs', external: true }));
      },
    },
  ],
});

const copyDeclarations = (from, to) => {
  for (const e of fs.readdirSync(from, { withFileTypes: true })) {
    const src = path.join(from, e.name);
    if (e.isDirectory()) copyDeclarations(src, path.join(to, e.name));
    else if (e.name.endsWith('.d.ts')) {
      fs.mkdirSync(to, { recursive: true });
      fs.copyFileSync(src, path.join(to, e.name));
    }
  }
};
for (const layer of LAYERS) copyDeclarations(path.join(root, 'dist', layer), path.join(out, layer));
fs.writeFileSync(path.join(out, 'package.json'), JSON.stringify({ type: 'commonjs' }, null, 2) + '\n');
