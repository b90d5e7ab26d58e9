/**
 * `entk predict`: flags → `predictRecording()` (src/compare/pipeline.ts): the one-step, POP-MU and
 * POP-ODE predictions of a finetune recording, written to `<recording>/predictions/`.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import type { Command } from 'commander';
import { PREDICTORS, type PredictorName, predictRecording } from '../../compare/index.js';
import { ODE_TOLERANCES } from '../../dynamics/index.js';
import { InvalidArgumentError } from '../../errors.js';
import { checkRecordingModel, finetuneDir, readFinetuneManifest } from '../../finetune/index.js';
import { FINETUNE_DIR } from '../../train/index.js';
import { output, parseNumber, parseThreads, prepare, withFlagNames } from '../shared.js';

/** The option a recording of a user's model is checked against (`entk predict` and `entk compare`). */
export const MODEL_CHECK_OPTION = [
  '--model <model.json|dir>',
  'with --recording: refuse unless the recording was made with this model (sha256 of its files)',
] as const;

interface PredictFlags {
  run?: string;
  name?: string;
  recording?: string;
  model?: string;
  predictors?: PredictorName[];
  rtol?: number;
  atol?: number;
  threads: number | 'auto';
  json?: boolean;
  backend?: string;
  quiet?: boolean;
}

/**
 * The recording directory from --recording, or --run and --name. Without --name, the run's only
 * recording, or its most recent one (by the manifest's createdAt), said on stderr. Shared with
 * `entk compare`.
 */
export async function recordingDir(flags: {
  run?: string;
  name?: string;
  recording?: string;
  model?: string;
}): Promise<string> {
  if (flags.model !== undefined) {
    // a recording of a user's model: --recording, and the model must be the one it was made with
    if (!flags.recording) {
      throw new InvalidArgumentError(
        '--recording',
        flags.recording,
        'the recording directory of --model (entk finetune --model … --out <dir>)',
      );
    }
    const dir = path.resolve(flags.recording);
    await withFlagNames({ model: '--model' }, async () =>
      checkRecordingModel(await readFinetuneManifest(dir), flags.model!),
    );
  }
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
  if (!flags.run) {
    throw new InvalidArgumentError(
      '--run',
      flags.run,
      'a finetune recording: --run <dir> [--name <name>] (or --recording <dir>)',
    );
  }
  if (flags.name) return finetuneDir(flags.run, flags.name);
  const root = path.join(path.resolve(flags.run), FINETUNE_DIR);
  const entries = await fs.readdir(root, { withFileTypes: true }).catch(() => []);
  const found: { name: string; createdAt: string }[] = [];
  for (const e of entries) {
    if (!e.isDirectory() || e.name.startsWith('.')) continue;
    const manifest = await fs.readFile(path.join(root, e.name, 'manifest.json'), 'utf8').catch(() => null);
    if (manifest == null) continue;
    let createdAt = '';
    try {
      createdAt = String((JSON.parse(manifest) as { createdAt?: unknown }).createdAt ?? '');
    } catch {
      // an unreadable manifest sorts first; reading it later reports the problem
    }
    found.push({ name: e.name, createdAt });
  }
  if (found.length === 0) {
    throw new InvalidArgumentError(
      '--run',
      flags.run,
      `a run with a finetune recording in ${root} (run entk finetune first)`,
    );
  }
  found.sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.name.localeCompare(b.name));
  const latest = found[found.length - 1]!;
  if (found.length > 1) {
    process.stderr.write(
      `entk: using the most recent recording '${latest.name}' of ${found.length} (${found.map((f) => f.name).join(', ')}); --name chooses\n`,
    );
  }
  return finetuneDir(flags.run, latest.name);
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
    .option('--name <name>', 'recording name (<run>/finetune/<name>; default: the only or most recent one)')
    .option('--recording <dir>', 'recording directory (instead of --run and --name)')
    .option(...MODEL_CHECK_OPTION)
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
      const dir = await recordingDir(flags);
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
