#!/usr/bin/env node
// Stand-in for a native `solc` binary: answers `--version` and `--standard-json`
// (JSON on stdin, JSON on stdout) with the WebAssembly compiler from npm, so that
// py-solc-x and ape-solidity work unchanged on machines where no native solc installs.
'use strict';
const fs = require('fs');
const path = require('path');
const solc = require(path.join(__dirname, '..', 'node_modules', 'solc'));

const args = process.argv.slice(2);
if (args.includes('--version')) {
  process.stdout.write(`solc, the solidity compiler commandline interface\nVersion: ${solc.version()}\n`);
  process.exit(0);
}
if (!args.includes('--standard-json')) {
  process.stderr.write('only --version and --standard-json are supported\n');
  process.exit(2);
}
const basePaths = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--base-path' || args[i] === '--include-path') basePaths.push(args[i + 1]);
  if (args[i] === '--allow-paths') basePaths.push(...args[i + 1].split(','));
}
basePaths.push(process.cwd());

// Resolve imports that the caller did not inline, relative to the allowed folders.
function findImports(importPath) {
  for (const base of basePaths) {
    const candidate = path.resolve(base, importPath);
    if (fs.existsSync(candidate)) return { contents: fs.readFileSync(candidate, 'utf8') };
  }
  return { error: `File not found: ${importPath}` };
}

const input = fs.readFileSync(0, 'utf8');
process.stdout.write(solc.compile(input, { import: findImports }));
