/**
 * `entk demo`: the README's main command — `entk experiment demo` (the shipped
 * src/experiment/configs/demo.yaml) into runs/demo: every built-in study at modest sizes on the
 * shipped digits and iris data, no downloads, under two minutes on two cores. `--preset transformer`
 * is the second demo, `entk experiment transformer` (configs/transformer.yaml) into
 * runs/demo-transformer: a whole transformer trained on the shipped WordNet glosses.
 */
import type { Command } from 'commander';
import { parseChoice } from '../shared.js';
import { type ExperimentFlags, runExperimentCommand } from './experiment.js';

/** Demo presets → the shipped experiment config each runs. */
const PRESETS = { digits: 'demo', transformer: 'transformer' } as const;
type Preset = keyof typeof PRESETS;

export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description(
      'run the demo experiment on shipped data (every study, ~1 minute) and write runs/demo/report.html',
    )
    .option(
      '--preset <name>',
      'digits (every study on shipped digits/iris) | transformer (a whole transformer on shipped text, ~1.5 minutes)',
      parseChoice('--preset', Object.keys(PRESETS) as Preset[]),
      'digits',
    )
    .option(
      '--out <dir>',
      'experiment directory (default: runs/demo, runs/demo-transformer for --preset transformer)',
    )
    .option('--force', 'redo every stage instead of reusing finished ones')
    .option('--json', 'print a JSON summary instead of the table')
    .action(async (flags: ExperimentFlags & { preset: Preset }) => {
      const { preset, ...rest } = flags;
      const out = rest.out ?? (preset === 'digits' ? 'runs/demo' : `runs/demo-${preset}`);
      await runExperimentCommand(PRESETS[preset], { ...rest, out }, program.opts());
    });
}
