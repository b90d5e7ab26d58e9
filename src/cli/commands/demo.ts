/**
 * `entk demo`: the README's main command — `entk experiment demo` (the shipped
 * src/experiment/configs/demo.yaml) into runs/demo: every built-in study at modest sizes on the
 * shipped digits and iris data, no downloads, under two minutes on two cores.
 */
import type { Command } from 'commander';
import { type ExperimentFlags, runExperimentCommand } from './experiment.js';

export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description(
      'run the demo experiment on shipped data (every study, ~1 minute) and write runs/demo/report.html',
    )
    .option('--out <dir>', 'experiment directory (default: runs/demo)', 'runs/demo')
    .option('--force', 'redo every stage instead of reusing finished ones')
    .option('--json', 'print a JSON summary instead of the table')
    .action(async (flags: ExperimentFlags) => {
      await runExperimentCommand('demo', flags, program.opts());
    });
}
