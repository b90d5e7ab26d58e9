#!/usr/bin/env node
// Keep `npm ci` working: the npm registry mirror reachable from these machines serves only the Linux
// builds of platform-specific optional packages (e.g. @biomejs/cli-darwin-arm64 answers 404), so npm 11
// leaves the other platforms' entries out of package-lock.json, and `npm ci` then refuses the lock
// ("Missing: @biomejs/cli-darwin-arm64@ from lock file"). This script adds an entry for every optional
// dependency named by a locked package but absent from the lock, with the version its parent asks for
// (and the parent's dev flag). `npm ci` skips them as optional packages for other platforms.
// Run after any `npm install` that rewrites the lock: node .ci/fix-lock-platforms.mjs
import { readFileSync, writeFileSync } from 'node:fs';

const file = new URL('../package-lock.json', import.meta.url);
const lock = JSON.parse(readFileSync(file, 'utf8'));
const packages = lock.packages;
let added = 0;
for (const [location, entry] of Object.entries(packages)) {
  for (const [name, range] of Object.entries(entry.optionalDependencies ?? {})) {
    // npm resolves a dependency next to its parent first, then in the hoisted top level.
    const nested = `${location ? `${location}/` : ''}node_modules/${name}`;
    const hoisted = `node_modules/${name}`;
    if (packages[nested] || packages[hoisted]) continue;
    if (!/^\d+\.\d+\.\d+(-[\w.]+)?$/.test(range)) continue; // only exact pins (platform packages are pinned)
    packages[hoisted] = { version: range, ...(entry.dev ? { dev: true } : {}), optional: true };
    added++;
  }
}
lock.packages = Object.fromEntries(Object.entries(packages).sort(([a], [b]) => (a === '' ? -1 : b === '' ? 1 : a < b ? -1 : 1)));
writeFileSync(file, `${JSON.stringify(lock, null, 2)}\n`);
console.log(`package-lock.json: added ${added} optional platform entr${added === 1 ? 'y' : 'ies'}`);
