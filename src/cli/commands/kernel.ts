/**
 * `entk kernel`: flags → `computeKernelStores` options (kernel stores of a run's checkpoints over a
 * point set, whole or one shard of block rows), or with `--model` → `computeModelKernelStore` (a
 * user-supplied tfjs layers model over points from a file, one store at --out);
 * `entk kernel merge|list|verify <dir>`.
 */
import type { Command } from 'commander';
import { InvalidArgumentError } from '../../errors.js';
import { parseArrayFormat } from '../../io/index.js';
import {
  NTK_CONTRACTIONS,
  NTK_IMPLEMENTATIONS,
  NTK_LOGITS,
  type NtkContraction,
  type NtkImplementation,
  type NtkLayerRule,
  type NtkLogits,
  type NtkParameters,
} from '../../kernel/index.js';
import {
  computeKernelStores,
  computeModelKernelStore,
  type KernelManifest,
  listKernelStores,
  mergeKernelShards,
  parseShard,
  type StoreKernelOptions,
  verifyKernelStore,
} from '../../kernel-store/index.js';
import {
  output,
  PARAMETERS_HELP,
  parseChoice,
  parseInteger,
  parseParameters,
  parseThreads,
  prepare,
  withFlagNames,
} from '../shared.js';

interface KernelFlags {
  run?: string;
  model?: string;
  labelColumn?: string;
  checkpoint: string;
  points?: string;
  name?: string;
  seed: number;
  out?: string;
  trace?: boolean;
  diagonal?: boolean;
  implementation: NtkImplementation;
  contraction: NtkContraction;
  logits: NtkLogits;
  parameters: NtkParameters;
  float64?: boolean;
  threads: number | 'auto';
  blockSize?: number;
  format: string;
  shard?: string;
  overwrite?: boolean;
  json?: boolean;
}

/** A short, stable summary of a store for --json output. */
function storeSummary(dir: string, m: KernelManifest) {
  return {
    dir,
    pointSet: m.points.name,
    source: m.source?.kind ?? 'run',
    model: m.source?.kind === 'model' ? { path: m.source.path, sha256: m.source.sha256 } : undefined,
    checkpoint: m.checkpoint?.id ?? null,
    step: m.checkpoint?.step ?? null,
    kind: m.kernel.kind,
    shape: m.kernel.shape,
    dtype: m.kernel.dtype,
    points: m.points.count,
    numOutputs: m.model.numOutputs,
    implementation: m.kernel.implementation,
    contraction: m.kernel.contraction,
    rules: m.kernel.rules,
    shard: m.shard,
    timings: m.kernel.timings,
    arrays: Object.fromEntries(
      Object.entries(m.arrays).map(([k, v]) => [k, { file: v.file, sha256: v.sha256 }]),
    ),
  };
}

function printStore(dir: string, m: KernelManifest): void {
  const shard = m.shard
    ? ` shard ${m.shard.index}/${m.shard.count} (points ${m.shard.rowStart}..${m.shard.rowEnd - 1})`
    : '';
  const ms = m.kernel.timings.checkpointTotal ?? m.kernel.timings.total;
  const from = m.checkpoint ? m.checkpoint.id : m.source?.kind === 'model' ? 'model' : '-';
  // A structured run with layers differentiated alone by autodiff is the hybrid: say so.
  const autodiff = (m.kernel.rules ?? []).filter((r) => r.rule === 'autodiff').map((r) => r.name);
  const hybrid = autodiff.length > 0 ? ` (hybrid: autodiff for ${autodiff.join(', ')})` : '';
  console.log(
    `${dir}  ${m.kernel.kind} [${m.kernel.shape.join(', ')}] ${m.kernel.dtype}  N=${m.points.count} V=${m.model.numOutputs}  ${from}  ${m.kernel.implementation}${hybrid}${shard}${ms != null ? `  ${(ms / 1000).toFixed(2)} s` : ''}`,
  );
}

/** One line per selected layer: how its derivatives were computed (stderr, next to the progress). */
function printRules(rules: NtkLayerRule[]): void {
  console.error('entk: eNTK per layer (layer, class, rule, parameters):');
  for (const r of rules) {
    const uses = r.uses > 1 ? `, ${r.uses} calls` : '';
    const note = r.note ? ` (${r.note})` : '';
    console.error(`  ${r.name}  ${r.className}  ${r.rule}  ${r.parameters}${uses}${note}`);
  }
}

/**
 * Print stores: with --json their summaries (each extended by `extra(store)`, if given), else one
 * line each (`empty` when there are none).
 */
function outputStores<S extends { dir: string; manifest: KernelManifest }>(
  json: boolean | undefined,
  stores: readonly S[],
  extra?: (store: S) => object,
  empty?: string,
): void {
  output(
    json,
    stores.map((s) => ({ ...storeSummary(s.dir, s.manifest), ...extra?.(s) })),
    () => {
      if (stores.length === 0 && empty) console.log(empty);
      for (const s of stores) printStore(s.dir, s.manifest);
    },
  );
}

export function registerKernel(program: Command): void {
  const kernel = program
    .command('kernel')
    .description(
      "compute eNTK kernel stores of a run's checkpoints (--run) or of any tfjs layers model (--model) over a point set (subcommands: merge, list, verify)",
    )
    .option('--run <dir>', "run directory written by 'entk train'")
    .option(
      '--model <model.json|dir>',
      'instead of --run: a tfjs layers model (e.g. converted from Keras); needs --points file:<csv|jsonl> or npy:<inputs.npy> and --out <store dir>',
    )
    .option(
      '--label-column <name>',
      'with --model: optional label column of a points file (class indices)',
      'label',
    )
    .option('--checkpoint <which>', 'last | first | all | an id or step | a comma list of these', 'last')
    .option(
      '--points <spec>',
      'points, comma-combined: train:100 (seeded sample), test:all, train:first=50, train:per-class=10, ids:a,b, file:x.csv; with --model: file:x.csv|x.jsonl or npy:x.npy',
    )
    .option('--name <name>', 'point-set name (the store directory); default derived from --points')
    .option('--seed <n>', 'seed of sampled point terms', parseInteger('--seed', 0), 0)
    .option(
      '--out <dir>',
      'root of the stores, <out>/<name>/<checkpoint>/ (default <run>/kernels); with --model: the store directory',
    )
    .option('--trace', 'store the trace kernel tr K / V, [N, N]')
    .option('--diagonal', 'store only the diagonal blocks K(x, x), [N, V, V]')
    .option(
      '--implementation <name>',
      `eNTK implementation: ${NTK_IMPLEMENTATIONS.join(' | ')}`,
      parseChoice('--implementation', NTK_IMPLEMENTATIONS),
      'auto',
    )
    .option(
      '--contraction <name>',
      `float32 contraction kernels: ${NTK_CONTRACTIONS.join(' | ')} (auto: entk's WebAssembly SIMD kernels unless tfjs-node)`,
      parseChoice('--contraction', NTK_CONTRACTIONS),
      'auto',
    )
    .option(
      '--logits <which>',
      `${NTK_LOGITS.join(' | ')}: the kernel of the model's outputs (refused when the output layer applies softmax/sigmoid: probabilities are not logits), or of the values before that softmax/sigmoid (also stored as logits)`,
      parseChoice('--logits', NTK_LOGITS),
      'output',
    )
    .option('--parameters <which>', PARAMETERS_HELP, parseParameters('--parameters'), 'all')
    .option('--float64', 'accumulate in float64 and store a float64 kernel')
    .option('--threads <n>', 'worker threads: a number or auto', parseThreads(1024), 1)
    .option(
      '--block-size <n>',
      'points per kernel block (default: chosen by the engine)',
      parseInteger('--block-size', 1),
    )
    .option('--format <format>', 'array files: npy | npz | safetensors | json', 'npy')
    .option(
      '--shard <i/n>',
      'compute only block-row shard i of n (0-based) into <store>.shards/; then entk kernel merge',
    )
    .option(
      '--overwrite',
      'replace kernel stores (or shards) already computed there (nothing else is ever replaced)',
    )
    .option('--json', 'machine-readable output')
    .action(async (flags: KernelFlags, command: Command) => {
      if (flags.run && flags.model) {
        throw new InvalidArgumentError('--model', flags.model, 'either --run or --model, not both');
      }
      if (!flags.run && !flags.model)
        throw new InvalidArgumentError('--run', undefined, "a run directory written by 'entk train'");
      if (!flags.points)
        throw new InvalidArgumentError('--points', undefined, 'a point spec such as train:per-class=10');
      if (flags.trace && flags.diagonal) {
        throw new InvalidArgumentError(
          '--diagonal',
          '--trace --diagonal',
          'at most one of --trace and --diagonal',
        );
      }
      // Library errors name their option; shown under the flag that set it ("--parameters: ...").
      const flagNames = {
        out: '--out',
        points: '--points',
        parameters: '--parameters',
        shard: '--shard',
        name: '--name',
        model: '--model',
        run: '--run',
        checkpoint: '--checkpoint',
        labelColumn: '--label-column',
      };
      // Kernel options common to --model and --run.
      const common: StoreKernelOptions = {
        kind: flags.trace ? 'trace' : flags.diagonal ? 'diagonal' : 'full',
        implementation: flags.implementation,
        parameters: flags.parameters,
        accumulation: flags.float64 ? 'float64' : 'float32',
        contraction: flags.contraction,
        logits: flags.logits,
        threads: flags.threads,
        blockSize: flags.blockSize,
        format: parseArrayFormat(flags.format, '--format'),
        shard:
          flags.shard === undefined
            ? undefined
            : await withFlagNames(flagNames, async () => parseShard(flags.shard!)),
        overwrite: flags.overwrite,
      };
      if (flags.model) {
        for (const flag of ['checkpoint', 'seed'] as const) {
          if (command.getOptionValueSource(flag) === 'cli') {
            throw new InvalidArgumentError(
              `--${flag}`,
              flags[flag],
              'nothing with --model (it applies to --run)',
            );
          }
        }
        if (!flags.out)
          throw new InvalidArgumentError('--out', undefined, 'a directory for the kernel store of --model');
        await prepare({ ...program.opts(), ...flags });
        const store = await withFlagNames(flagNames, () =>
          computeModelKernelStore({
            ...common,
            model: flags.model!,
            points: flags.points!,
            out: flags.out!,
            name: flags.name,
            labelColumn: flags.labelColumn,
          }),
        );
        if (!flags.json && store.unsupported.length > 0) {
          console.error(
            `entk: ${store.unsupported.length} item(s) outside the structured eNTK path; implementation '${store.manifest.kernel.implementation}' was used:`,
          );
          for (const line of store.unsupported) console.error(`  - ${line}`);
        }
        if (!flags.json) printRules(store.rules);
        outputStores(flags.json, [store], (s) => ({ unsupported: s.unsupported }));
        return;
      }
      await prepare({ ...program.opts(), ...flags });
      const stores = await withFlagNames(flagNames, () =>
        computeKernelStores({
          ...common,
          run: flags.run!,
          points: flags.points!,
          checkpoint: flags.checkpoint,
          name: flags.name,
          seed: flags.seed,
          out: flags.out,
        }),
      );
      if (!flags.json && stores[0]) printRules(stores[0].rules);
      outputStores(flags.json, stores);
    });

  kernel
    .command('merge <dir>')
    .description(
      'check that all shards of a kernel are present and consistent, and assemble the one-piece store ' +
        '(<dir>: a <store>.shards directory, the store path, or a point-set directory)',
    )
    .option('--format <format>', 'array files of the merged store (default: as the shards)')
    .option('--remove-shards', 'delete the shards after a successful merge')
    .option('--overwrite', 'replace a kernel store already at the merged path')
    .option('--json', 'machine-readable output')
    .action(
      async (
        dir: string,
        flags: { format?: string; removeShards?: boolean; overwrite?: boolean; json?: boolean },
      ) => {
        const all = { ...kernel.opts(), ...flags };
        await prepare({ ...program.opts(), json: all.json, quiet: true });
        const merged = await mergeKernelShards(dir, {
          format: flags.format === undefined ? undefined : parseArrayFormat(flags.format, '--format'),
          removeShards: flags.removeShards,
          overwrite: all.overwrite, // `kernel --overwrite` (the parent's flag) or `merge --overwrite`
        });
        outputStores(all.json, merged, (m) => ({ shardsDir: m.shardsDir }));
      },
    );

  kernel
    .command('list <dir>')
    .description('list the kernel stores under a run, a kernels directory or a point-set directory')
    .option('--json', 'machine-readable output')
    .action(async (dir: string, flags: { json?: boolean }) => {
      const json = flags.json ?? kernel.opts().json;
      const stores = await listKernelStores(dir);
      outputStores(json, stores, undefined, `no kernel stores under ${dir}`);
    });

  kernel
    .command('verify <dir>')
    .description(
      "verify kernel stores under a directory: manifest, every file's size, array header (dtype, shape, order) and sha256",
    )
    .option('--json', 'machine-readable output')
    .action(async (dir: string, flags: { json?: boolean }) => {
      const json = flags.json ?? kernel.opts().json;
      const stores = await listKernelStores(dir);
      if (stores.length === 0)
        throw new InvalidArgumentError('dir', dir, 'a directory containing kernel stores');
      for (const s of stores) await verifyKernelStore(s.dir);
      output(
        json,
        stores.map((s) => ({ dir: s.dir, ok: true })),
        () => {
          for (const s of stores) console.log(`ok  ${s.dir}`);
        },
      );
    });
}
