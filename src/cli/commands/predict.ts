/**
 * `entk predict`: flags → `predictRecording()` (src/compare/pipeline.ts): the one-step, POP-MU and
 * POP-ODE predictions of a finetune recording, written to `<recording>/predictions/`.
 */
import * as path from 'node:path';
import type { Command } from 'commander';
import { PREDICTORS, type PredictorName, predictRecording } from '../../compare/index.js';
import { ODE_TOLERANCES } from '../../dynamics/index.js';
import { InvalidArgumentError } from '../../errors.js';
import { finetuneDir } from '../../finetune/index.js';
import { output, parseNumber, parseThreads, prepare } from '../shared.js';

interface PredictFlags {
  run?: string;
  name?: string;
  recording?: string;
  predictors?: PredictorName[];
  rtol?: number;
  atol?: number;
  threads: number | 'auto';
  json?: boolean;
  backend?: string;
  quiet?: boolean;
}

/** The recording directory from --recording, or --run and --name. Shared with `entk compare`. */
export function recordingDir(flags: { run?: string; name?: string; recording?: string }): string {
  if (flags.recording) {
    if (flags.run || flags.name) {
      throw new InvalidArgumentError(
        '--recording',
        flags.recording,
        'either --recording or --run with --name, not both',
      );
    }
    return path.resolve(flags.recording);
  }
  if (!flags.run || !flags.name) {
    throw new InvalidArgumentError(
      flags.run ? '--name' : '--run',
      flags.run ? flags.name : flags.run,
      'a finetune recording: --run <dir> --name <name> (or --recording <dir>)',
    );
  }
  return finetuneDir(flags.run, flags.name);
}

function parsePredictors(value: string): PredictorName[] {
  const parts = value.split(',').map((s) => s.trim());
  for (const p of parts) {
    if (!PREDICTORS.some((name) => name === p)) {
      throw new InvalidArgumentError(
        '--predictors',
        value,
        `a comma-separated list of ${PREDICTORS.join(', ')}`,
      );
    }
  }
  return parts as PredictorName[];
}

export function registerPredict(program: Command): void {
  program
    .command('predict')
    .description(
      'predict a finetune recording from its eNTK: equation (1) per step, POP-MU, POP-ODE (logit and simplex forms), frozen and refreshed kernels',
    )
    .option('--run <dir>', 'run directory')
    .option('--name <name>', 'recording name (<run>/finetune/<name>)')
    .option('--recording <dir>', 'recording directory (instead of --run and --name)')
    .option(
      '--predictors <list>',
      `comma-separated subset of ${PREDICTORS.join(', ')} (default: all that apply)`,
      parsePredictors,
    )
    .option(
      '--rtol <r>',
      `POP-ODE relative tolerance (default ${ODE_TOLERANCES.rtol.toExponential()})`,
      parseNumber('--rtol', 'positive'),
    )
    .option(
      '--atol <a>',
      `POP-ODE absolute tolerance (default ${ODE_TOLERANCES.atol.toExponential()})`,
      parseNumber('--atol', 'nonnegative'),
    )
    .option('--threads <n|auto>', 'threads of the replicator right-hand side', parseThreads(64), 'auto')
    .option('--json', 'print a JSON summary')
    .action(async (flags: PredictFlags, command: Command) => {
      const globals = command.optsWithGlobals() as PredictFlags;
      await prepare({ backend: globals.backend, json: flags.json, quiet: globals.quiet });
      const dir = recordingDir(flags);
      const m = await predictRecording(dir, {
        predictors: flags.predictors,
        rtol: flags.rtol,
        atol: flags.atol,
        threads: flags.threads,
      });
      const summary = {
        dir: path.join(dir, 'predictions'),
        operator: m.operator,
        options: m.options,
        predictors: Object.fromEntries(
          Object.entries(m.predictors).map(([k, v]) => [
            k,
            {
              file: v!.file,
              shape: v!.shape,
              seconds: v!.seconds,
              ...(v!.stats ? { rhsEvaluations: v!.stats.rhsEvaluations } : {}),
            },
          ]),
        ),
      };
      output(flags.json, summary, () => {
        for (const [k, v] of Object.entries(summary.predictors)) {
          console.log(`${k.padEnd(20)} [${v.shape.join(', ')}]  ${v.seconds.toFixed(3)} s`);
        }
        console.log(`→ ${summary.dir}`);
      });
    });
}
