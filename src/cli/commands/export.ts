/**
 * `entk export`: convert kernel stores to another array format (npy, npz, safetensors, json),
 * verifying every file on the way. Flags map onto `exportKernelStore`.
 */
import * as path from 'node:path';
import type { Command } from 'commander';
import { InvalidArgumentError } from '../../errors.js';
import { parseArrayFormat } from '../../io/index.js';
import {
  checkStoreOutput,
  exportKernelStore,
  listKernelStores,
  MANIFEST_JSON,
} from '../../kernel-store/index.js';
import { exists } from '../../util/index.js';
import { output, withFlagNames } from '../shared.js';

export function registerExport(program: Command): void {
  program
    .command('export')
    .description(
      'convert kernel stores to npy | npz | safetensors | json (one store, or every store under a run or kernels directory)',
    )
    .option('--store <dir>', 'a kernel store, or a run / kernels / point-set directory holding stores')
    .option('--format <format>', 'npy | npz | safetensors | json')
    .option('--out <dir>', 'output directory (a store; or, for many stores, <out>/<point-set>/<checkpoint>/)')
    .option(
      '--overwrite',
      'replace kernel stores already at the output paths (nothing else is ever replaced)',
    )
    .option('--json', 'machine-readable output')
    .action(
      async (flags: {
        store?: string;
        format?: string;
        out?: string;
        overwrite?: boolean;
        json?: boolean;
      }) => {
        if (!flags.store) throw new InvalidArgumentError('--store', undefined, 'a kernel store directory');
        if (!flags.out) throw new InvalidArgumentError('--out', undefined, 'an output directory');
        const format = parseArrayFormat(flags.format, '--format');
        const single = await exists(path.join(flags.store, MANIFEST_JSON));
        const jobs = single
          ? [{ dir: flags.store, out: flags.out }]
          : (await listKernelStores(flags.store)).map((s) => ({
              dir: s.dir,
              out: path.join(flags.out!, s.pointSet, s.checkpointId),
            }));
        if (jobs.length === 0)
          throw new InvalidArgumentError('--store', flags.store, 'a directory containing kernel stores');
        const overwrite = flags.overwrite;
        // Every target is checked before anything is written.
        await withFlagNames({ out: '--out' }, async () => {
          for (const job of jobs) await checkStoreOutput(job.out, { overwrite });
        });
        const done: Array<{ from: string; to: string; format: string; arrays: Record<string, unknown> }> = [];
        for (const job of jobs) {
          const manifest = await withFlagNames({ out: '--out' }, () =>
            exportKernelStore(job.dir, { format, out: job.out, overwrite }),
          );
          done.push({
            from: job.dir,
            to: job.out,
            format,
            arrays: Object.fromEntries(
              Object.entries(manifest.arrays).map(([k, v]) => [
                k,
                { file: v.file, bytes: v.bytes, sha256: v.sha256 },
              ]),
            ),
          });
        }
        output(flags.json, done, () => {
          for (const d of done) console.log(`${d.from} -> ${d.to} (${format})`);
        });
      },
    );
}
