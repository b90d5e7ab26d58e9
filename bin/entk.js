#!/usr/bin/env node
// The entk command line. Sources are TypeScript, loaded through tsx (a runtime dependency).
import { register } from 'tsx/esm/api';

register();
// `entk ... | head` closes stdout early: stop quietly instead of dumping a stack.
process.stdout.on('error', (error) => {
  if (error.code === 'EPIPE') process.exit(0);
  throw error;
});
const { main } = await import('../src/cli/main.ts');
await main(process.argv);
