/**
 * `entk experiment <config>`: load and validate an experiment config (YAML/JSON, or a shipped
 * preset name), run it resumably with `runExperiment`, print the summary table and where the
 * report is. `entk demo` (./demo.ts) is this command on the shipped demo config.
 */
import * as path from 'node:path';
import type { Command } from 'commander';
import type { StageEvent } from '../../experiment/index.js';
import { output, prepare, withFlagNames } from '../shared.js';

/** Flags of `entk experiment` and `entk demo`. */
export interface ExperimentFlags {
  out?: string;
  force?: boolean;
  json?: boolean;
  quiet?: boolean;
  /** A user's model.json (or its directory) replacing the config's train: / model.path. */
  model?: string;
}

/** Default experiment directory of a config reference: runs/<file name without extension>. */
export function defaultOutDir(ref: string): string {
  return path.join('runs', path.basename(ref).replace(/\.(ya?ml|json)$/i, ''));
}

/** Run an experiment config for the CLI: progress on stderr, summary on stdout (or JSON). */
export async function runExperimentCommand(
  ref: string,
  flags: ExperimentFlags,
  globals: { backend?: string; quiet?: boolean },
): Promise<void> {
  await prepare({ ...globals, ...flags });
  // Loaded here, not at start-up: the experiment stack (Vega, resvg, ...) is heavy for other commands.
  const { loadExperimentConfig, runExperiment } = await import('../../experiment/index.js');
  const { formatTableText } = await import('../../report/index.js');
  const quiet = Boolean(flags.json || flags.quiet || globals.quiet);
  const config = await loadExperimentConfig(ref, flags.model !== undefined ? { model: flags.model } : {});
  const outDir = flags.out ?? defaultOutDir(ref);
  const t0 = performance.now();
  const clock = () => `[${((performance.now() - t0) / 1000).toFixed(1).padStart(5)} s]`;
  const say = (line: string) => {
    if (!quiet) process.stderr.write(`${clock()} ${line}\n`);
  };
  const onEvent = (event: StageEvent) => {
    if (event.status === 'cached') say(`reused ${event.stage}`);
    else if (event.status === 'done' && event.seconds >= 0.5)
      say(`done   ${event.stage} (${event.seconds.toFixed(1)} s)`);
  };
  const result = await withFlagNames({ outDir: '--out' }, () =>
    runExperiment(config, { outDir, force: flags.force, log: say, onEvent }),
  );
  const ran = result.events.filter((e) => e.status === 'done').length;
  const reused = result.events.filter((e) => e.status === 'cached').length;
  const rel = (p: string) => path.relative(process.cwd(), p) || '.';
  output(
    flags.json,
    {
      outDir: result.outDir,
      report: result.html,
      results: result.resultsFile,
      seconds: result.seconds,
      stages: result.events,
      summary: Object.fromEntries(result.summary.rows.map((r) => [r.key, { label: r.label, ...r.values }])),
    },
    () => {
      process.stdout.write(formatTableText(result.summary));
      process.stdout.write(`\nreport:  ${rel(result.html)}\n`);
      process.stdout.write(`results: ${rel(result.resultsFile)}\n`);
      process.stdout.write(`time:    ${result.seconds.toFixed(1)} s (${ran} stages run, ${reused} reused)\n`);
    },
  );
}

export function registerExperiment(program: Command): void {
  program
    .command('experiment')
    .description(
      'run an experiment config (train → kernels → finetune → predictions → metrics → report), resuming where an earlier run stopped',
    )
    .argument(
      '<config>',
      'a .yaml/.json experiment config, or a shipped preset (demo, checkpoints, laziness, ...)',
    )
    .option('--out <dir>', 'experiment directory (default: runs/<config name>)')
    .option(
      '--force',
      'redo every stage instead of reusing finished ones (deletes only the runs this experiment recorded)',
    )
    .option(
      '--model <path>',
      "run on a user's tfjs layers model.json (or its directory) instead of the config's train: (points: must be file: points files)",
    )
    .option('--json', 'print a JSON summary instead of the table')
    .action(async (ref: string, flags: ExperimentFlags) => {
      await runExperimentCommand(ref, flags, program.opts());
    });
}
