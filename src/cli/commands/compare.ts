/**
 * `entk compare`: `compareRecording()` (src/compare/pipeline.ts) — metrics of a finetune recording
 * against its predictions, written to `<recording>/comparison.json`; prints a summary.
 */
import * as path from 'node:path';
import type { Command } from 'commander';
import { COMPARISON_JSON, compareRecording, summarizeComparison } from '../../compare/index.js';
import { output, prepare } from '../shared.js';
import { MODEL_CHECK_OPTION, recordingDir } from './predict.js';

interface CompareFlags {
  run?: string;
  name?: string;
  recording?: string;
  model?: string;
  json?: boolean;
  backend?: string;
  quiet?: boolean;
}

const fmt = (x: number | null | undefined) =>
  x == null || Number.isNaN(x) ? '—' : Math.abs(x) >= 0.01 ? x.toFixed(4) : x.toExponential(2);

export function registerCompare(program: Command): void {
  program
    .command('compare')
    .description(
      'compare a finetune recording with its predictions: trajectory errors, per-step correlations and sign agreement, final KL, laziness and discretisation gaps, kernel drift',
    )
    .option('--run <dir>', 'run directory')
    .option('--name <name>', 'recording name (<run>/finetune/<name>; default: the only or most recent one)')
    .option('--recording <dir>', 'recording directory (instead of --run and --name)')
    .option(...MODEL_CHECK_OPTION)
    .option('--json', 'print a JSON summary (the full metrics are in comparison.json)')
    .action(async (flags: CompareFlags, command: Command) => {
      const globals = command.optsWithGlobals() as CompareFlags;
      await prepare({ backend: globals.backend, json: flags.json, quiet: globals.quiet });
      const dir = await recordingDir(flags);
      const comparison = await compareRecording(dir);
      const summary = { file: path.join(dir, COMPARISON_JSON), ...summarizeComparison(comparison) };
      output(flags.json, summary, () => {
        console.log(
          `${summary.recording}: η = ${summary.learningRate}, ${summary.steps} steps, final loss ${fmt(summary.finalLoss)}, ‖θ−θ₀‖ = ${fmt(summary.paramDistance)}`,
        );
        for (const [k, v] of Object.entries(summary.trajectories)) {
          console.log(
            `  ${k.padEnd(18)} log-prob RMSE ${fmt(v.logProbRmse)}  max ${fmt(v.logProbMax)}  prob RMSE ${fmt(v.probRmse)}  final KL ${fmt(v.finalKlMean)}`,
          );
        }
        for (const [k, v] of Object.entries(summary.changes)) {
          console.log(
            `  ${k.padEnd(18)} Δlog π Pearson ${fmt(v.pearson)}  Spearman ${fmt(v.spearman)}  sign agreement ${fmt(v.signAgreement)}`,
          );
        }
        if (summary.lazinessGap)
          console.log(
            `  laziness gap (actual vs POP-MU, final)       log-prob RMSE ${fmt(summary.lazinessGap.logProbRmse)}`,
          );
        if (summary.lazinessGapRefreshed)
          console.log(
            `  laziness gap, refreshed kernels (final)      log-prob RMSE ${fmt(summary.lazinessGapRefreshed.logProbRmse)}`,
          );
        if (summary.discretisationGap)
          console.log(
            `  discretisation gap (POP-MU vs POP-ODE, final) log-prob RMSE ${fmt(summary.discretisationGap.logProbRmse)}`,
          );
        if (summary.kernelDrift)
          console.log(
            `  kernel drift at step ${summary.kernelDrift.step}: ‖K_t−K_0‖/‖K_0‖ = ${fmt(summary.kernelDrift.all.relativeChange)}, distance ${fmt(summary.kernelDrift.all.distance)}`,
          );
        console.log(`→ ${summary.file}`);
      });
    });
}
