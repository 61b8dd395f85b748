// Preloaded with `node -r` to play an install where fs-ext's native module did not build: any
// require of fs-ext fails as a missing module would.
const Module = require('node:module');
const resolve = Module._resolveFilename;
Module._resolveFilename = function (request, ...rest) {
  if (request === 'fs-ext') {
    const err = new Error("Cannot find module 'fs-ext' (blocked by the test)");
    err.code = 'MODULE_NOT_FOUND';
    throw err;
  }
  return resolve.call(this, request, ...rest);
};
