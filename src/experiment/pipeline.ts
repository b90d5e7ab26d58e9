/**
 * The stages every study is built from, each resumable through {@link StageRunner}:
 *
 *     train/<run>                   a training run (src/train) in <out>/runs/<run>/
 *     points/<run>                  the finetune and observation point ids of that run
 *     kernel/<run>/<checkpoint>     the full eNTK over those points at a checkpoint (src/kernel-store)
 *     heatmap/<run>/<checkpoint>    a trace kernel over the heatmap points
 *     finetune/<label>              a recorded finetune run (src/finetune)
 *
 * Stage results hold paths relative to the experiment directory, so a finished experiment can be
 * moved and still resumes.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { InvalidArgumentError } from '../errors.js';
import {
  FINETUNE_VERSION,
  type FinetuneRecording,
  finetune,
  readFinetuneRecording,
} from '../finetune/index.js';
import {
  computeKernelStores,
  computeModelKernelStore,
  type KernelStore,
  pointIndices,
  readKernelStore,
  resolvePoints,
} from '../kernel-store/index.js';
import {
  type CheckpointInfo,
  dataSha256,
  openRun,
  type Run,
  readRunConfig,
  runPaths,
  type SplitFile,
  selectCheckpoint,
  type TrainConfig,
  train,
} from '../train/index.js';
import { exists, readJsonFile, resolveInside } from '../util/index.js';
import type { ExperimentConfig, FinetuneSettings, PointSpecs } from './config.js';
import {
  labelledModelPoints,
  MODEL_CHECKPOINT,
  MODEL_RUN,
  type ModelFacts,
  modelFacts,
  modelJsonOf,
  modelSha256,
  pointsSha256,
  readModelPoints,
  readTrackedPoints,
  writeModelPoints,
} from './model-source.js';
import type { ModelSourceConfig } from './schema.js';
import { canonicalJson, type StageRunner } from './stages.js';

/** What every stage function gets. */
export interface ExperimentContext {
  config: ExperimentConfig;
  /** The experiment directory (absolute). */
  outDir: string;
  stages: StageRunner;
  /** One line of progress for humans (the CLI prints it to stderr). */
  log: (line: string) => void;
  /** Opened runs by directory (openRun loads the data; done once per run). */
  runs: Map<string, Promise<Run>>;
}

/** A stage's key and result. */
export interface Staged<T> {
  key: string;
  result: T;
}

/**
 * Absolute path of a path stored relative to the experiment directory (in stages.json); a path
 * leaving the directory is a CorruptFileError naming stages.json.
 */
export function abs(ctx: ExperimentContext, relative: string): string {
  if (relative === '.') return path.resolve(ctx.outDir);
  const file = path.join(ctx.outDir, 'stages.json');
  return path.resolve(resolveInside(ctx.outDir, relative, 'a stage result path', file, { basename: false }));
}

function rel(ctx: ExperimentContext, absolute: string): string {
  return path.relative(ctx.outDir, absolute) || '.';
}

/** Open a run once per experiment (data loading is the slow part). */
export function openRunCached(ctx: ExperimentContext, dir: string): Promise<Run> {
  const key = path.resolve(dir);
  let run = ctx.runs.get(key);
  if (!run) {
    run = openRun(key);
    ctx.runs.set(key, run);
  }
  return run;
}

// ---- train ----------------------------------------------------------------------------------

/** Result of a train stage. */
export interface TrainedRun {
  /** Run name (directory under runs/). */
  name: string;
  /** Run directory, relative to the experiment directory. */
  dir: string;
  checkpoints: CheckpointInfo[];
  classNames: string[];
  /** For a user's model (`model:`, ./model-source.ts): what the source stage read from it. */
  model?: ModelFacts;
}

/**
 * The base "run" of a user's model (`model:`): the stage `source/model`, keyed by the sha256 of the
 * model's files and of the points files (hashed every session, so a changed model or edited points
 * redo everything after it); its one checkpoint is the model's weights. Nothing is trained and the
 * model's files are only read.
 */
export async function modelStage(
  ctx: ExperimentContext,
  model: ModelSourceConfig,
  specs: PointSpecs,
): Promise<Staged<TrainedRun>> {
  const sha256 = await modelSha256(model);
  // The points files' content is an input too (as a run's data is of its train stage): the
  // finetune and kernel stages key on this stage and the point ids, not on the points' values.
  const inputs = { sha256, labelColumn: model.labelColumn, points: await pointsSha256(specs) };
  return ctx.stages.run(`source/${MODEL_RUN}`, inputs, async () => {
    ctx.log(`reading the model ${model.path} (sha256 ${sha256.slice(0, 12)}…)`);
    const facts = await modelFacts(model, sha256);
    const dir = path.join(ctx.outDir, 'runs', MODEL_RUN);
    await fs.mkdir(dir, { recursive: true });
    const classNames = Array.from({ length: facts.numClasses }, (_, i) => String(i));
    return { name: MODEL_RUN, dir: rel(ctx, dir), checkpoints: [MODEL_CHECKPOINT], classNames, model: facts };
  });
}

/** The model.json of the experiment's `model:` (for the stages of a user's model). */
function modelFile(ctx: ExperimentContext): Promise<string> {
  return modelJsonOf(ctx.config.model!.path);
}

/**
 * Train `config` into `<out>/runs/<name>/`. An interrupted run with the same configuration is
 * resumed from its last checkpoint; a run with another configuration is replaced.
 */
export async function trainStage(
  ctx: ExperimentContext,
  name: string,
  config: TrainConfig,
): Promise<Staged<TrainedRun>> {
  const dir = path.join(ctx.outDir, 'runs', name);
  // The data's content (not its path) is part of the key: an edited data file redoes the stage
  // and everything downstream of it.
  const data = await dataSha256(config.data);
  return ctx.stages.run(
    `train/${name}`,
    { config, dataSha256: data },
    async () => {
      let stored: TrainConfig | null = null;
      let storedData: string | null | undefined;
      try {
        stored = await readRunConfig(dir);
        if (stored) storedData = (await readJsonFile<SplitFile>(runPaths(dir).split)).dataSha256;
      } catch {
        stored = null; // damaged: start again
      }
      const same = stored !== null && canonicalJson(stored) === canonicalJson(config) && storedData === data;
      if (!same && (await exists(dir))) {
        // Only a run this experiment recorded is replaced; anything else there is the user's.
        if (ctx.stages.resultOf(`train/${name}`) === undefined) {
          throw new InvalidArgumentError(
            'outDir',
            ctx.outDir,
            `an experiment directory whose runs/${name} this experiment made (${dir} holds a run or files it did not record in stages.json; move them away or choose another --out)`,
          );
        }
        await fs.rm(dir, { recursive: true, force: true });
        ctx.runs.delete(path.resolve(dir));
      }
      ctx.log(`training ${name} (${describeModel(config)} on ${config.data})${same ? ', resuming' : ''}`);
      const { checkpoints } = await train(config, { outDir: dir, resume: same });
      ctx.runs.delete(path.resolve(dir));
      const split = await readJsonFile<SplitFile>(runPaths(dir).split);
      return { name, dir: rel(ctx, dir), checkpoints, classNames: split.classNames };
    },
    { outputs: (r) => [path.join(abs(ctx, r.dir), 'checkpoints', 'index.json')] },
  );
}

/** 'MLP 128-128 relu (standard)' etc. */
export function describeModel(config: TrainConfig): string {
  const m = config.model;
  if (m.kind === 'mlp')
    return `MLP ${m.widths.join('-') || 'linear'} ${m.activation} (${m.parameterization})`;
  if (m.kind === 'cnn') return `CNN ${(m.filters ?? [16, 32]).join('-')}`;
  if (m.kind === 'transformer')
    return `transformer ${m.layers}×${m.width} (${m.heads} heads, ${m.norm}-LN, ${m.pooling} pooling, ${m.maxLength} tokens)`;
  return 'linear softmax';
}

/** The checkpoint of `run` named by `selector` (first, last, an id or a step). */
export function checkpointOf(run: TrainedRun, selector: string, key: string): CheckpointInfo {
  try {
    return selectCheckpoint(run.checkpoints, selector);
  } catch (error) {
    if (error instanceof InvalidArgumentError) throw new InvalidArgumentError(key, selector, error.expected);
    throw error;
  }
}

// ---- points ---------------------------------------------------------------------------------

/** Result of a points stage: the tracked points (finetune points first). */
export interface TrackedPoints {
  finetuneIds: string[];
  observeIds: string[];
  finetuneLabels: number[];
  observeLabels: number[];
}

/** Resolve the finetune and observation point specs against a run (seeded). */
export async function pointsStage(
  ctx: ExperimentContext,
  trained: Staged<TrainedRun>,
  specs: PointSpecs,
  keyPrefix: string,
): Promise<Staged<TrackedPoints>> {
  const facts = trained.result.model;
  if (facts) {
    // the points files' content is in the source stage's key (trained.key)
    return ctx.stages.run(
      `points/${trained.result.name}`,
      { source: trained.key, specs },
      async () => readModelPoints(facts, specs, abs(ctx, trained.result.dir)),
      { outputs: () => [path.join(abs(ctx, trained.result.dir), 'tracked.json')] },
    );
  }
  return ctx.stages.run(
    `points/${trained.result.name}`,
    { train: trained.key, specs, seed: ctx.config.seed },
    async () => {
      const run = await openRunCached(ctx, abs(ctx, trained.result.dir));
      const resolve = async (which: 'finetune' | 'observe') => {
        try {
          const set = await resolvePoints(run, specs[which], { seed: ctx.config.seed, name: which });
          if (set.sources.includes('file')) {
            throw new InvalidArgumentError(
              `${keyPrefix}.${which}`,
              specs[which],
              'train:, test: or ids: terms (file: points are not supported here)',
            );
          }
          return set;
        } catch (error) {
          if (error instanceof InvalidArgumentError && error.argument === 'points') {
            throw new InvalidArgumentError(`${keyPrefix}.${which}`, specs[which], error.expected);
          }
          throw error;
        }
      };
      const finetune = await resolve('finetune');
      const observe = await resolve('observe');
      const shared = observe.dataset.ids.filter((id) => finetune.dataset.ids.includes(id));
      if (shared.length > 0) {
        throw new InvalidArgumentError(
          `${keyPrefix}.observe`,
          specs.observe,
          `points disjoint from ${keyPrefix}.finetune (${shared.length} shared, e.g. ${shared[0]}); use test: points or another seed`,
        );
      }
      return {
        finetuneIds: finetune.dataset.ids,
        observeIds: observe.dataset.ids,
        finetuneLabels: Array.from(finetune.dataset.y),
        observeLabels: Array.from(observe.dataset.y),
      };
    },
  );
}

// ---- kernels --------------------------------------------------------------------------------

/** Result of a kernel stage. */
export interface KernelResult {
  /** Store directory, relative to the experiment directory. */
  store: string;
  checkpoint: CheckpointInfo;
}

/** The full eNTK over all tracked points (finetune then observation points) at one checkpoint. */
export async function kernelStage(
  ctx: ExperimentContext,
  trained: Staged<TrainedRun>,
  points: Staged<TrackedPoints>,
  checkpoint: CheckpointInfo,
): Promise<Staged<KernelResult>> {
  return ctx.stages.run(
    `kernel/${trained.result.name}/${checkpoint.id}`,
    { points: points.key, checkpoint: checkpoint.id },
    async () => {
      const ids = [...points.result.finetuneIds, ...points.result.observeIds];
      if (trained.result.model) {
        const runDir = abs(ctx, trained.result.dir);
        ctx.log(`kernel of the model over ${ids.length} points`);
        const store = await computeModelKernelStore({
          model: await modelFile(ctx),
          points: await writeModelPoints(runDir, await readTrackedPoints(runDir), ids, 'tracked'),
          out: path.join(runDir, 'kernels', 'tracked'),
          name: 'tracked',
          progress: false,
          overwrite: true, // the experiment's own store (this stage's inputs changed)
        });
        return { store: rel(ctx, store.dir), checkpoint };
      }
      const run = await openRunCached(ctx, abs(ctx, trained.result.dir));
      ctx.log(`kernel of ${trained.result.name} at ${checkpoint.id} over ${ids.length} points`);
      const [store] = await computeKernelStores({
        run,
        points: `ids:${ids.join(',')}`,
        checkpoint: checkpoint.id,
        name: 'tracked',
        progress: false,
        overwrite: true, // the experiment's own store (this stage's inputs changed)
      });
      return { store: rel(ctx, store!.dir), checkpoint };
    },
    { outputs: (r) => [path.join(abs(ctx, r.store), 'manifest.json')] },
  );
}

/** A trace kernel over `spec` (class-sorted heatmap) at one checkpoint. */
export async function heatmapStage(
  ctx: ExperimentContext,
  trained: Staged<TrainedRun>,
  spec: string,
  checkpoint: CheckpointInfo,
): Promise<Staged<KernelResult>> {
  return ctx.stages.run(
    `heatmap/${trained.result.name}/${checkpoint.id}`,
    { train: trained.key, spec, checkpoint: checkpoint.id, seed: ctx.config.seed },
    async () => {
      if (trained.result.model) {
        // A user's model: the heatmap is over the labelled tracked points (`spec` is not used).
        const runDir = abs(ctx, trained.result.dir);
        const tracked = await readTrackedPoints(runDir);
        const ids = labelledModelPoints(tracked);
        ctx.log(`trace kernel of the model over its ${ids.length} labelled tracked points`);
        const store = await computeModelKernelStore({
          model: await modelFile(ctx),
          points: await writeModelPoints(runDir, tracked, ids, 'heatmap'),
          out: path.join(runDir, 'kernels', 'heatmap'),
          name: 'heatmap',
          kind: 'trace',
          progress: false,
          overwrite: true,
        });
        return { store: rel(ctx, store.dir), checkpoint };
      }
      const run = await openRunCached(ctx, abs(ctx, trained.result.dir));
      ctx.log(`trace kernel of ${trained.result.name} at ${checkpoint.id} over ${spec}`);
      let stores: Awaited<ReturnType<typeof computeKernelStores>>;
      try {
        stores = await computeKernelStores({
          run,
          points: spec,
          checkpoint: checkpoint.id,
          name: 'heatmap',
          kind: 'trace',
          seed: ctx.config.seed,
          progress: false,
          overwrite: true,
        });
      } catch (error) {
        if (error instanceof InvalidArgumentError && error.argument === 'points') {
          throw new InvalidArgumentError('studies.checkpoints.heatmapPoints', spec, error.expected);
        }
        throw error;
      }
      return { store: rel(ctx, stores[0]!.dir), checkpoint };
    },
    { outputs: (r) => [path.join(abs(ctx, r.store), 'manifest.json')] },
  );
}

/** Read a kernel store written by a kernel stage. */
export function readStore(ctx: ExperimentContext, kernel: KernelResult): Promise<KernelStore> {
  return readKernelStore(abs(ctx, kernel.store));
}

/** Log-probabilities of the network at the store's checkpoint for `ids` (from the stored logits), [P, V]. */
export function storeLogits(store: KernelStore, ids: readonly string[]): Float64Array {
  const V = store.manifest.model.numOutputs;
  const idx = pointIndices(store.manifest, ids);
  const logits = store.logits!.data as Float32Array;
  const out = new Float64Array(ids.length * V);
  idx.forEach((k, p) => {
    for (let i = 0; i < V; i++) out[p * V + i] = logits[k * V + i]!;
  });
  return out;
}

// ---- finetune -------------------------------------------------------------------------------

/** Result of a finetune stage. */
export interface FinetuneResult {
  /** Recording directory, relative to the experiment directory. */
  dir: string;
  checkpoint: CheckpointInfo;
  settings: FinetuneSettings;
  finetuneIds: string[];
  observeIds: string[];
}

/**
 * Finetune from a checkpoint of a run with plain SGD on `ids.finetune` (full batch or seeded
 * minibatches), recording log π of every label at every tracked point, the kernel at the
 * checkpoint and on the refresh schedule (src/finetune/record.ts), in
 * `<out>/runs/<run>/finetune/<name>/`.
 */
export async function finetuneStage(
  ctx: ExperimentContext,
  name: string,
  trained: Staged<TrainedRun>,
  checkpoint: CheckpointInfo,
  ids: { finetune: string[]; observe: string[] },
  settings: FinetuneSettings,
): Promise<Staged<FinetuneResult>> {
  const runDir = abs(ctx, trained.result.dir);
  return ctx.stages.run(
    `finetune/${trained.result.name}/${name}`,
    // the recording format is an input: a recording of an older format is redone, not misread
    {
      train: trained.key,
      checkpoint: checkpoint.id,
      ids,
      settings,
      seed: ctx.config.seed,
      format: FINETUNE_VERSION,
    },
    async () => {
      ctx.log(
        `finetuning ${trained.result.name} from ${checkpoint.id}: ${settings.steps} steps, η = ${settings.learningRate}, ${ids.finetune.length} finetune + ${ids.observe.length} observation points`,
      );
      const tracked = trained.result.model ? await readTrackedPoints(runDir) : null;
      const points = tracked
        ? {
            model: await modelFile(ctx),
            out: path.join(runPaths(runDir).finetune, name),
            points: await writeModelPoints(runDir, tracked, ids.finetune, `${name}-finetune`),
            ...(ids.observe.length > 0
              ? { observe: await writeModelPoints(runDir, tracked, ids.observe, `${name}-observe`) }
              : {}),
          }
        : {
            run: await openRunCached(ctx, runDir),
            checkpoint: checkpoint.id,
            points: `ids:${ids.finetune.join(',')}`,
            ...(ids.observe.length > 0 ? { observe: `ids:${ids.observe.join(',')}` } : {}),
          };
      const { dir } = await finetune({
        ...points,
        name,
        mode: settings.batch === 'full' ? 'full' : 'minibatch',
        ...(settings.batch === 'full' ? {} : { batchSize: settings.batch }),
        learningRate: settings.learningRate,
        steps: settings.steps,
        recordEvery: settings.recordEvery,
        refreshEvery: settings.refreshEvery ?? 0,
        ...(settings.parameters ? { parameters: settings.parameters } : {}),
        seed: ctx.config.seed,
        overwrite: true,
      });
      return { dir: rel(ctx, dir), checkpoint, settings, finetuneIds: ids.finetune, observeIds: ids.observe };
    },
    { outputs: (r) => [path.join(abs(ctx, r.dir), 'manifest.json')] },
  );
}

/** Read the recording of a finetune stage. */
export function readRecording(ctx: ExperimentContext, result: FinetuneResult): Promise<FinetuneRecording> {
  return readFinetuneRecording(abs(ctx, result.dir));
}
