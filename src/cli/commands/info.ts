import type { Command } from 'commander';
import { output, prepare } from '../shared.js';

export function registerInfo(program: Command): void {
  program
    .command('info')
    .description('print the tfjs backend in use, SIMD/threads, and versions of tfjs, node and entk')
    .option('--json', 'machine-readable output')
    .action(async (options: { json?: boolean }) => {
      const info = await prepare({ ...program.opts(), ...options });
      output(options.json, info, () => {
        console.log(`entk ${info.versions.entk}`);
        console.log(`backend   ${info.backend} (requested: ${info.requested})`);
        console.log(`simd      ${info.simd ? 'yes' : 'no'}`);
        console.log(`threads   ${info.threads ? 'yes' : 'no'}`);
        console.log(`tfjs      ${info.versions.tfjs}`);
        console.log(`node      ${info.versions.node}`);
      });
    });
}
