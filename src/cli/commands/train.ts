/**
 * `entk train`: flags → a TrainConfig (optionally on top of a --config JSON/YAML file, or of the
 * stored config of the run being resumed) → `train()`. No logic beyond the mapping.
 */

import type { Command } from 'commander';
import { addBackboneOptions, type BackboneCliOptions, backboneConfigFromCli } from '../../embed/index.js';
import { InvalidArgumentError } from '../../errors.js';
import { BERT_WEIGHT_SOURCES, MODEL_PRESETS, TRANSFORMER_POOLINGS } from '../../model/index.js';
import { OPTIMIZERS, readRunConfig, type TrainConfigInput, toConfigInput, train } from '../../train/index.js';
import { readConfigFile } from '../../util/index.js';
import {
  learningRateAlias,
  output,
  parseChoice,
  parseInteger,
  parseIntegerList,
  parseNumber,
  prepare,
  resolveLearningRate,
  withFlagNames,
} from '../shared.js';

interface TrainFlags extends BackboneCliOptions {
  textColumn?: string;
  tokenizer?: string;
  pretrained?: string;
  pretrainedWeights?: 'auto' | 'safetensors' | 'onnx';
  maxLength?: number;
  data?: string;
  model?: string;
  out: string;
  config?: string;
  epochs?: number;
  steps?: number;
  learningRate?: number;
  lr?: number;
  optimizer?: string;
  momentum?: number;
  batchSize?: number | 'full';
  seed?: number;
  testFraction?: number;
  splitSeed?: number;
  standardize?: boolean;
  checkpointEvery?: number;
  checkpoints?: number[];
  checkpointGeometric?: { first: number; factor: number };
  evalEvery?: number;
  labelColumn?: string;
  featureColumns?: string[];
  idColumn?: string;
  classNames?: string[];
  widths?: number[];
  activation?: string;
  parameterization?: string;
  outputScale?: number;
  resume?: boolean;
  json?: boolean;
}

function parseStepList(flag: string) {
  return (value: string): number[] => {
    const parts = value.split(',').map((s) => s.trim());
    if (parts.some((p) => !/^\d+$/.test(p))) {
      throw new InvalidArgumentError(
        flag,
        value,
        'a comma-separated list of steps (integers >= 0), e.g. 0,10,100',
      );
    }
    return parts.map(Number);
  };
}

function parseGeometric(value: string): { first: number; factor: number } {
  const m = /^\s*(\d+)\s*,\s*([0-9.eE+-]+)\s*$/.exec(value);
  const first = m ? Number(m[1]) : Number.NaN;
  const factor = m ? Number(m[2]) : Number.NaN;
  if (!m || !(first >= 1) || !Number.isFinite(factor) || factor <= 1) {
    throw new InvalidArgumentError(
      '--checkpoint-geometric',
      value,
      'FIRST,FACTOR with FIRST >= 1 and FACTOR > 1, e.g. 1,2',
    );
  }
  return { first, factor };
}

function parseBatchSize(value: string): number | 'full' {
  if (value.trim() === 'full') return 'full';
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || n < 1)
    throw new InvalidArgumentError('--batch-size', value, "a positive integer or 'full'");
  return n;
}

function parseNameList(flag: string) {
  return (value: string): string[] => {
    const parts = value.split(',').map((s) => s.trim());
    if (parts.some((p) => p === ''))
      throw new InvalidArgumentError(flag, value, 'a comma-separated list of names');
    return parts;
  };
}

/** Map the flags onto a config input (on top of `base`). Exported for tests. */
export function configFromFlags(flags: TrainFlags, base: Record<string, unknown>): TrainConfigInput {
  const c: Record<string, unknown> = structuredClone(base);
  const obj = (key: string) => {
    const current = c[key];
    const next = current != null && typeof current === 'object' ? { ...(current as object) } : {};
    c[key] = next;
    return next as Record<string, unknown>;
  };
  if (flags.data !== undefined) c.data = flags.data;
  if (flags.model !== undefined) {
    if (!Object.hasOwn(MODEL_PRESETS, flags.model)) {
      throw new InvalidArgumentError(
        '--model',
        flags.model,
        `a model preset (${Object.keys(MODEL_PRESETS).join(', ')})`,
      );
    }
    c.model = flags.model;
  }
  if (flags.epochs !== undefined && flags.steps !== undefined) {
    throw new InvalidArgumentError(
      '--steps',
      flags.steps,
      `no --steps together with --epochs (${flags.epochs})`,
    );
  }
  if (flags.epochs !== undefined) {
    c.epochs = flags.epochs;
    delete c.steps;
  }
  if (flags.steps !== undefined) {
    c.steps = flags.steps;
    delete c.epochs;
  }
  if (flags.optimizer !== undefined) {
    const o = obj('optimizer');
    if (o.name !== flags.optimizer) {
      // switching optimiser: drop the old one's settings (and its default learning rate)
      for (const key of Object.keys(o)) delete o[key];
    }
    o.name = flags.optimizer;
  }
  const learningRate = resolveLearningRate(flags);
  if (learningRate !== undefined) obj('optimizer').learningRate = learningRate;
  if (flags.momentum !== undefined) obj('optimizer').momentum = flags.momentum;
  if (flags.batchSize !== undefined) c.batchSize = flags.batchSize;
  if (flags.seed !== undefined) c.seed = flags.seed;
  if (flags.testFraction !== undefined) obj('split').testFraction = flags.testFraction;
  if (flags.splitSeed !== undefined) obj('split').seed = flags.splitSeed;
  if (flags.standardize === false) c.standardize = false;
  const schedules = [
    flags.checkpointEvery !== undefined && { every: flags.checkpointEvery },
    flags.checkpoints !== undefined && { steps: flags.checkpoints },
    flags.checkpointGeometric !== undefined && { geometric: flags.checkpointGeometric },
  ].filter(Boolean);
  if (schedules.length > 1) {
    throw new InvalidArgumentError(
      '--checkpoints',
      schedules.map((s) => JSON.stringify(s)).join(' and '),
      'one of --checkpoints, --checkpoint-every, --checkpoint-geometric',
    );
  }
  if (schedules.length === 1) c.checkpoints = schedules[0];
  if (flags.evalEvery !== undefined) c.evalEvery = flags.evalEvery;
  if (flags.labelColumn !== undefined) obj('dataOptions').labelColumn = flags.labelColumn;
  if (flags.featureColumns !== undefined) obj('dataOptions').featureColumns = flags.featureColumns;
  if (flags.idColumn !== undefined) obj('dataOptions').idColumn = flags.idColumn;
  if (flags.classNames !== undefined) obj('dataOptions').classNames = flags.classNames;
  if (flags.textColumn !== undefined) obj('dataOptions').textColumn = flags.textColumn;
  const backbone = backboneConfigFromCli(flags);
  if (backbone) c.backbone = backbone;
  if (flags.tokenizer !== undefined) c.tokenizer = flags.tokenizer;
  if (flags.pretrained !== undefined) {
    if (flags.model !== undefined) {
      throw new InvalidArgumentError(
        '--model',
        flags.model,
        `no --model with --pretrained (the architecture follows ${flags.pretrained}/config.json)`,
      );
    }
    delete c.model;
    const p: Record<string, unknown> = { dir: flags.pretrained };
    if (flags.pretrainedWeights !== undefined) p.source = flags.pretrainedWeights;
    if (flags.maxLength !== undefined) p.maxLength = flags.maxLength;
    // --pooling is the backbone's flag; without --backbone it is the pretrained transformer's.
    if (flags.pooling !== undefined && flags.backbone === undefined) {
      p.pooling = parseChoice('--pooling', TRANSFORMER_POOLINGS)(flags.pooling);
    }
    c.pretrained = p;
  } else {
    for (const [flag, value] of [
      ['--pretrained-weights', flags.pretrainedWeights],
      ['--max-length', flags.maxLength],
    ] as const) {
      if (value !== undefined)
        throw new InvalidArgumentError(flag, value, 'a pretrained encoder (--pretrained <dir>) to apply to');
    }
  }

  const architecture = {
    widths: flags.widths,
    activation: flags.activation,
    parameterization: flags.parameterization,
    outputScale: flags.outputScale,
  };
  if (Object.values(architecture).some((v) => v !== undefined)) {
    const model = c.model ?? 'mlp';
    let spec: Record<string, unknown>;
    if (typeof model === 'string') {
      if (!Object.hasOwn(MODEL_PRESETS, model)) {
        throw new InvalidArgumentError(
          'config.model',
          model,
          `a model preset (${Object.keys(MODEL_PRESETS).join(', ')})`,
        );
      }
      spec = structuredClone(MODEL_PRESETS[model]) as unknown as Record<string, unknown>;
    } else {
      spec = structuredClone(model) as Record<string, unknown>;
    }
    if (spec.kind === 'mlp') {
      for (const [key, value] of Object.entries(architecture)) if (value !== undefined) spec[key] = value;
    } else if (spec.kind === 'cnn') {
      if (flags.widths !== undefined) spec.dense = flags.widths;
      if (flags.activation !== undefined) spec.activation = flags.activation;
      if (flags.parameterization !== undefined || flags.outputScale !== undefined) {
        throw new InvalidArgumentError(
          flags.parameterization !== undefined ? '--parameterization' : '--output-scale',
          flags.parameterization ?? flags.outputScale,
          'an MLP model (the cnn preset has the standard parameterisation and no output scale)',
        );
      }
    } else {
      const [flag, value] = Object.entries(architecture).find(([, v]) => v !== undefined)!;
      throw new InvalidArgumentError(
        `--${flag.replace(/[A-Z]/g, (m) => `-${m.toLowerCase()}`)}`,
        value,
        `an MLP or CNN model (not ${spec.kind})`,
      );
    }
    c.model = spec;
  }
  return c as TrainConfigInput;
}

export function registerTrain(program: Command): void {
  const command = program
    .command('train')
    .description(
      'train a model with a checkpoint schedule into a run directory (config, split, checkpoints, logs)',
    )
    .requiredOption('--out <dir>', 'run directory to create (or to continue with --resume)')
    .option(
      '--data <name|path>',
      'digits | iris | wine | breast_cancer | synthetic[:classes=3,dim=2,...] | a .csv/.jsonl file',
    )
    .option('--model <preset>', `model preset: ${Object.keys(MODEL_PRESETS).join(', ')} (default: mlp)`)
    .option('--config <file>', 'training options as JSON or YAML (the TrainConfig); flags override it')
    .option('--epochs <n>', 'passes over the training split (default: 20)', parseInteger('--epochs', 1))
    .option('--steps <n>', 'optimiser steps instead of epochs', parseInteger('--steps', 1))
    .option(
      '--learning-rate <rate>',
      'learning rate η (default: 0.1 for sgd, 0.01 for transformers, 4 for NTK-parameterised MLPs, 1e-3 for adam)',
      parseNumber('--learning-rate', 'positive'),
    )
    .addOption(learningRateAlias('positive'))
    .option(
      '--optimizer <name>',
      `${OPTIMIZERS.join(' | ')} (default: sgd, plain SGD as in the theory)`,
      parseChoice('--optimizer', OPTIMIZERS),
    )
    .option(
      '--momentum <m>',
      'momentum coefficient for --optimizer momentum (default: 0.9)',
      parseNumber('--momentum', 'nonnegative'),
    )
    .option(
      '--batch-size <n|full>',
      "minibatch size, or 'full' for full-batch gradient descent (default: 32)",
      parseBatchSize,
    )
    .option(
      '--seed <n>',
      'seed of initial weights, minibatch order and split (default: 0)',
      parseInteger('--seed', 0),
    )
    .option(
      '--test-fraction <f>',
      'fraction of each class held out for testing (default: 0.2)',
      parseNumber('--test-fraction', 'positive'),
    )
    .option(
      '--split-seed <n>',
      'seed of the train/test split (default: --seed)',
      parseInteger('--split-seed', 0),
    )
    .option(
      '--no-standardize',
      'do not standardise features (default: standardise with training-split mean/std)',
    )
    .option(
      '--checkpoints <steps>',
      'checkpoint at these steps, e.g. 0,10,100 (0 and the final step always)',
      parseStepList('--checkpoints'),
    )
    .option('--checkpoint-every <k>', 'checkpoint every k steps', parseInteger('--checkpoint-every', 1))
    .option(
      '--checkpoint-geometric <first,factor>',
      'checkpoint at steps first·factor^i (default: 1,2)',
      parseGeometric,
    )
    .option(
      '--eval-every <k>',
      'log train/test metrics every k steps (default: every epoch)',
      parseInteger('--eval-every', 1),
    )
    .option('--label-column <name>', 'label column of a CSV/JSONL file (default: label)')
    .option(
      '--feature-columns <names>',
      'comma-separated feature columns of a CSV/JSONL file',
      parseNameList('--feature-columns'),
    )
    .option('--id-column <name>', 'id column of a CSV/JSONL file (default: id if present)')
    .option(
      '--text-column <name>',
      'text column of a CSV/JSONL file, embedded with --backbone or tokenised with --tokenizer (default: text)',
    )
    .option(
      '--pretrained <dir>',
      'start from the pretrained BERT-style encoder in this local model directory (config.json + model.safetensors or onnx/model.onnx, tokenizer.json), e.g. models/tiny-bert: the architecture follows its config.json, a fresh head is added; --pooling cls|mean (default cls) pools its tokens',
    )
    .option(
      '--pretrained-weights <file>',
      'with --pretrained: which weights to read, auto (model.safetensors, else onnx/model.onnx) | safetensors | onnx',
      parseChoice('--pretrained-weights', BERT_WEIGHT_SOURCES),
    )
    .option(
      '--max-length <n>',
      "with --pretrained: tokens per text (default: the model's max_position_embeddings, at most 128)",
      parseInteger('--max-length', 1),
    )
    .option(
      '--tokenizer <dir>',
      'tokenise a text dataset for a transformer model (--model transformer-tiny) with the tokenizer of this local model directory (tokenizer.json), e.g. models/tiny-bert',
    )
    .option(
      '--class-names <names>',
      'comma-separated class names in label-index order',
      parseNameList('--class-names'),
    )
    .option(
      '--widths <list>',
      'override the preset: hidden widths, e.g. 512,512',
      parseIntegerList('--widths'),
    )
    .option('--activation <name>', 'override the preset: relu | tanh | gelu | erf')
    .option('--parameterization <name>', 'override the preset: standard | ntk')
    .option(
      '--output-scale <x>',
      'override the preset: multiply the logits by x',
      parseNumber('--output-scale', 'nonzero'),
    );
  addBackboneOptions(command);
  command
    .option('--resume', 'continue the run in --out from its last checkpoint (may extend --epochs/--steps)')
    .option('--json', 'print a JSON summary')
    .action(async (flags: TrainFlags) => {
      const info = await prepare({ ...program.opts(), ...flags });
      let base: Record<string, unknown> = {};
      if (flags.config) base = await readConfigFile(flags.config, 'a JSON/YAML object of training options');
      else if (flags.resume && flags.data === undefined) {
        const stored = await readRunConfig(flags.out);
        if (!stored) {
          throw new InvalidArgumentError(
            '--out',
            flags.out,
            "a run directory written by 'entk train' to --resume (it holds no config.json; to start a new run there, give --data)",
          );
        }
        base = toConfigInput(stored) as Record<string, unknown>;
      }
      const input = configFromFlags(flags, base);
      if (input.data === undefined) {
        throw new InvalidArgumentError(
          '--data',
          undefined,
          'a dataset name or file (or --config, or --resume of an existing run)',
        );
      }
      const controller = new AbortController();
      const onSignal = () => {
        if (controller.signal.aborted) process.exit(130);
        process.stderr.write(
          'entk: stopping after the current step (continue with --resume; Ctrl-C again to quit now)\n',
        );
        controller.abort();
      };
      process.on('SIGINT', onSignal);
      let result: Awaited<ReturnType<typeof train>>;
      try {
        result = await withFlagNames({ outDir: '--out' }, () =>
          train(input, { outDir: flags.out, resume: flags.resume, signal: controller.signal }),
        );
      } finally {
        process.off('SIGINT', onSignal);
      }
      const summary = {
        dir: result.dir,
        backend: info.backend,
        model: result.config.modelPreset ?? result.config.model,
        data: result.config.data,
        step: result.step,
        totalSteps: result.totalSteps,
        epoch: result.epoch,
        interrupted: result.interrupted,
        resumedFrom: result.resumedFrom,
        seconds: result.seconds,
        numParameters: result.numParameters,
        numTrain: result.numTrain,
        numTest: result.numTest,
        metrics: result.metrics,
        checkpoints: result.checkpoints.map((c) => ({ id: c.id, step: c.step })),
      };
      output(flags.json, summary, () => {
        const m = result.metrics;
        const name = result.config.pretrained
          ? `pretrained ${result.config.pretrained.dir}`
          : (result.config.modelPreset ?? result.config.model.kind);
        const what = `${name} (${result.numParameters} parameters) on ${result.config.data} (${result.numTrain} train / ${result.numTest} test)`;
        const resumed = result.resumedFrom !== null ? `, resumed from step ${result.resumedFrom}` : '';
        console.log(
          result.interrupted
            ? `interrupted ${what} at step ${result.step} of ${result.totalSteps} after ${result.seconds.toFixed(1)} s${resumed} (continue with --resume)`
            : `trained ${what}: ${result.totalSteps} steps in ${result.seconds.toFixed(1)} s${resumed}`,
        );
        console.log(
          `test accuracy ${m.testAccuracy.toFixed(4)}  test loss ${m.testLoss.toFixed(4)}  (train accuracy ${m.trainAccuracy.toFixed(4)}, loss ${m.trainLoss.toFixed(4)})`,
        );
        const steps = result.checkpoints.map((c) => String(c.step));
        const shown = steps.length > 14 ? [...steps.slice(0, 8), '...', ...steps.slice(-3)] : steps;
        console.log(`${steps.length} checkpoints in ${result.dir}/checkpoints (steps ${shown.join(', ')})`);
      });
      if (result.interrupted) process.exitCode = 130;
    });
}
