/**
 * `entk finetune`: flags → `finetune()` options (src/finetune/record.ts): a recorded SGD run from a
 * checkpoint into `<run>/finetune/<name>/`, or with `--model` from a user's tfjs layers model into
 * `--out`. The learning rate is `--learning-rate` (the library's and the manifest's `learningRate`);
 * `--lr` is kept as a hidden alias.
 */
import type { Command } from 'commander';
import { FINETUNE_MODES, type FinetuneMode, finetune } from '../../finetune/index.js';
import { NTK_IMPLEMENTATIONS, type NtkImplementation, type NtkParameters } from '../../kernel/index.js';
import {
  learningRateAlias,
  output,
  PARAMETERS_HELP,
  parseChoice,
  parseInteger,
  parseNumber,
  parseParameters,
  parseThreads,
  prepare,
  resolveLearningRate,
  withFlagNames,
} from '../shared.js';

interface FinetuneFlags {
  run?: string;
  model?: string;
  out?: string;
  labelColumn?: string;
  name?: string;
  points: string;
  observe?: string;
  checkpoint: string;
  mode: FinetuneMode;
  batchSize?: number;
  learningRate?: number;
  lr?: number;
  steps: number;
  recordEvery: number;
  refreshEvery: number;
  seed: number;
  parameters: NtkParameters;
  implementation: NtkImplementation;
  threads: number | 'auto';
  overwrite?: boolean;
  json?: boolean;
  backend?: string;
  quiet?: boolean;
}

export function registerFinetune(program: Command): void {
  program
    .command('finetune')
    .description(
      'finetune a checkpoint (or, with --model, a tfjs layers model) with plain SGD (descent or ascent) and record log π of every label at every tracked point, with the eNTK at the checkpoint (and refreshed)',
    )
    .option('--run <dir>', 'run directory (from entk train)')
    .option(
      '--model <model.json|dir>',
      'instead of --run: a tfjs layers model (e.g. written by saveModel); needs --points file:<csv|jsonl> with labels and --out',
    )
    .option('--out <dir>', 'with --model: the recording directory')
    .option('--label-column <name>', 'with --model: the label column of the points files (default: label)')
    .option(
      '--name <name>',
      'recording name: writes <run>/finetune/<name>/ (required with --run; with --model default: the name of --out)',
    )
    .requiredOption(
      '--points <spec>',
      'finetune set, e.g. train:per-class=2, ids:digits-0003, train:first=10 (see entk kernel --help); with --model: file:<points.csv|.jsonl>',
    )
    .option(
      '--observe <spec>',
      'observation set (tracked, not trained on), e.g. test:50; with --model: file:<csv|jsonl> or npy:<inputs.npy>',
    )
    .option(
      '--checkpoint <id>',
      'with --run: checkpoint to start from: last | first | a step | an id (default: last)',
    )
    .option(
      '--mode <mode>',
      `${FINETUNE_MODES.join(' | ')}: how the finetune set is fed`,
      parseChoice('--mode', FINETUNE_MODES),
      'full',
    )
    .option('--batch-size <n>', 'minibatch size (--mode minibatch)', parseInteger('--batch-size', 1))
    .option(
      '--learning-rate <eta>',
      'learning rate η (required); negative = gradient ascent (write --learning-rate=-0.05)',
      parseNumber('--learning-rate', 'nonzero'),
    )
    .addOption(learningRateAlias('nonzero'))
    .requiredOption('--steps <n>', 'SGD steps', parseInteger('--steps', 1))
    .option(
      '--record-every <k>',
      'record log-probs every k steps (and at the last step)',
      parseInteger('--record-every', 1),
      1,
    )
    .option(
      '--refresh-every <r>',
      'recompute the eNTK every r steps (0 = only at the checkpoint)',
      parseInteger('--refresh-every', 0),
      0,
    )
    .option(
      '--seed <n>',
      'seed of sampled point specs and of the minibatch order',
      parseInteger('--seed', 0),
      0,
    )
    .option(
      '--parameters <which>',
      `the parameters finetuned (the rest frozen) and covered by the recorded eNTK: ${PARAMETERS_HELP}`,
      parseParameters('--parameters'),
      'all',
    )
    .option(
      '--implementation <name>',
      `eNTK implementation: ${NTK_IMPLEMENTATIONS.join(' | ')}`,
      parseChoice('--implementation', NTK_IMPLEMENTATIONS),
      'auto',
    )
    .option('--threads <n|auto>', 'eNTK worker threads', parseThreads(1024), 1)
    .option('--overwrite', 'replace an existing recording of that name')
    .option('--json', 'print a JSON summary')
    .action(async (flags: FinetuneFlags, command: Command) => {
      const globals = command.optsWithGlobals() as FinetuneFlags;
      await prepare({ backend: globals.backend, json: flags.json, quiet: globals.quiet });
      const learningRate = resolveLearningRate(flags);
      // finetune() checks the options (a missing --learning-rate, --run or --name too); its errors
      // name the flags.
      const flagNames = {
        name: '--name',
        run: '--run',
        model: '--model',
        out: '--out',
        checkpoint: '--checkpoint',
        labelColumn: '--label-column',
        learningRate: '--learning-rate',
        parameters: '--parameters',
        points: '--points',
        observe: '--observe',
      };
      const { dir, manifest: m } = await withFlagNames(flagNames, () =>
        finetune({
          run: flags.run,
          model: flags.model,
          out: flags.out,
          labelColumn: flags.labelColumn,
          name: flags.name,
          points: flags.points,
          observe: flags.observe,
          checkpoint: flags.checkpoint,
          mode: flags.mode,
          batchSize: flags.batchSize,
          learningRate: learningRate as number, // undefined (no flag): refused by finetune()
          steps: flags.steps,
          recordEvery: flags.recordEvery,
          refreshEvery: flags.refreshEvery,
          seed: flags.seed,
          parameters: flags.parameters,
          implementation: flags.implementation,
          threads: flags.threads,
          overwrite: Boolean(flags.overwrite),
        }),
      );
      const T = m.recordedSteps.length;
      const lastDrift = m.kernels[m.kernels.length - 1]!.drift;
      const summary = {
        dir,
        name: m.name,
        source:
          m.source.kind === 'model'
            ? { kind: 'model', path: m.source.path, sha256: m.source.sha256 }
            : m.source,
        checkpoint: m.checkpoint,
        learningRate: m.learningRate,
        mode: m.mode,
        batchSize: m.batchSize,
        steps: m.steps,
        finetunePoints: m.finetune.ids.length,
        observePoints: m.observe.ids.length,
        numClasses: m.numClasses,
        recordedSteps: T,
        parameters: m.ntk.parameters ?? 'all',
        parameterCount: m.ntk.parameterCount,
        kernelSteps: m.kernels.map((k) => k.step),
        kernelDrift: lastDrift,
        seconds: m.seconds,
      };
      output(flags.json, summary, () => {
        console.log(
          `${dir}: ${m.finetune.ids.length} finetune + ${m.observe.ids.length} observation points × ${m.numClasses} labels, ` +
            `${m.steps} ${m.mode} SGD steps at η = ${m.learningRate} from ${m.checkpoint?.id ?? (m.source.kind === 'model' ? m.source.path : '?')}, ${T} records, ` +
            `kernels at steps ${summary.kernelSteps.join(', ')}` +
            (lastDrift ? `; kernel drift ${lastDrift.all.relativeChange.toExponential(2)}` : '') +
            ` (${m.seconds.total.toFixed(1)} s)`,
        );
      });
    });
}
