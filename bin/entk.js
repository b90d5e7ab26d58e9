#!/usr/bin/env node
// The entk command line. An installed package runs the compiled build (dist/); a checkout of the
// repository runs the TypeScript sources through tsx (a dev dependency), so the CLI never lags
// behind an edit.
import { existsSync } from 'node:fs';

// `entk ... | head` closes stdout early: stop quietly instead of dumping a stack.
process.stdout.on('error', (error) => {
  if (error.code === 'EPIPE') process.exit(0);
  throw error;
});
const source = new URL('../src/cli/main.ts', import.meta.url);
let main;
if (existsSync(source)) {
  const { register } = await import('tsx/esm/api');
  register();
  ({ main } = await import(source.href));
} else {
  ({ main } = await import('../dist/cli/main.js'));
}
await main(process.argv);
