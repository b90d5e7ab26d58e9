#!/usr/bin/env node
// The entk command line. Sources are TypeScript, loaded through tsx (a runtime dependency).
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../src/cli/main.ts');
await main(process.argv);
