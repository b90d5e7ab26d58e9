/**
 * `entk analyze`: `analyzeRun()` (src/analysis/run.ts) — spectrum, alignment, kernel movement and
 * kernel predictors vs the network over a run's checkpoints, for one point set; writes
 * `<run>/analysis/<set>/` (analysis.json, report.html, results.json, figures/) and prints a table.
 */
import type { Command } from 'commander';
import { analyzeRun } from '../../analysis/index.js';
import { InvalidArgumentError } from '../../errors.js';
import { output, parseChoice, parseInteger, parseNumber } from '../shared.js';

interface AnalyzeFlags {
  run?: string;
  points?: string;
  k?: number;
  method?: 'auto' | 'full' | 'lanczos';
  ridge?: number;
  time?: number;
  out?: string;
  report?: boolean;
  verify?: boolean;
  layers?: boolean;
  logits?: 'output' | 'pre-activation';
  json?: boolean;
  quiet?: boolean;
}

const fmt = (x: number | null | undefined, digits = 4) =>
  x == null || !Number.isFinite(x)
    ? '—'
    : Math.abs(x) >= 0.01 || x === 0
      ? x.toFixed(digits)
      : x.toExponential(2);

export function registerAnalyze(program: Command): void {
  program
    .command('analyze')
    .description(
      "kernel analysis over a run's checkpoints: top eigenvalues (block Lanczos; kernels larger than memory streamed from disk), effective rank, label energy, kernel–target alignment, CKA and drift, kernel regression and the linearised network vs the network; --layers: per-layer contributions",
    )
    .option('--run <dir>', 'run directory with kernel stores (entk kernel --checkpoint all ...)')
    .option('--points <name>', "point set (<run>/kernels/<name>); default: the run's only one")
    .option('--k <n>', 'eigenvalues per checkpoint', parseInteger('--k', 1), 20)
    .option(
      '--method <m>',
      'spectrum: auto (full decomposition up to 1500 rows, else Lanczos) | full | lanczos',
      parseChoice('--method', ['auto', 'full', 'lanczos'] as const),
      'auto',
    )
    .option(
      '--ridge <r>',
      'kernel regression ridge, relative to the mean diagonal',
      parseNumber('--ridge', 'nonnegative'),
      1e-3,
    )
    .option(
      '--time <t>',
      'time t = n·η of the linearised cross-entropy flow',
      parseNumber('--time', 'nonnegative'),
      10,
    )
    .option('--out <dir>', 'output directory (default <run>/analysis/<points>)')
    .option(
      '--layers',
      "per-layer contributions: trace share and target alignment of every layer's kernel (one computation of the structured factors per checkpoint; needs the run's checkpoints)",
    )
    .option(
      '--logits <l>',
      'with --layers: output | pre-activation (as the stores were computed with)',
      parseChoice('--logits', ['output', 'pre-activation'] as const),
      'output',
    )
    .option('--no-report', 'write analysis.json only (no report.html, figures)')
    .option('--no-verify', "skip checking the kernel files' sha256")
    .option('--json', 'print the results as JSON')
    .action(async (flags: AnalyzeFlags, command: Command) => {
      const globals = command.optsWithGlobals() as AnalyzeFlags;
      if (!flags.run) throw new InvalidArgumentError('--run', undefined, 'a run directory');
      const quiet = Boolean(flags.json || globals.quiet);
      const { results, dir, report } = await analyzeRun(flags.run, {
        points: flags.points,
        k: flags.k,
        method: flags.method,
        ridge: flags.ridge,
        time: flags.time,
        out: flags.out,
        report: flags.report,
        verify: flags.verify,
        layers: flags.layers,
        logits: flags.logits,
        log: quiet ? undefined : (m) => process.stderr.write(`${m}\n`),
      });
      output(flags.json, { dir, report, ...results }, () => {
        console.log(
          `${results.pointSet}: ${results.kernelKind} kernel, N = ${results.numPoints} (${results.numTrain} train, ${results.numTest} test), V = ${results.numClasses}`,
        );
        console.log(
          `${'checkpoint'.padEnd(12)} ${'λ1'.padStart(10)} ${'part.ratio'.padStart(10)} ${'KTA'.padStart(7)} ${'CKA(0)'.padStart(7)} ${'net acc'.padStart(8)} ${'KR acc'.padStart(7)} ${'lin acc'.padStart(8)}`,
        );
        for (const c of results.checkpoints) {
          const p = c.predictors;
          console.log(
            `${c.id.padEnd(12)} ${fmt(c.spectrum.top[0], 2).padStart(10)} ${fmt(c.spectrum.participationRatio, 2).padStart(10)} ${fmt(c.targetAlignment, 3).padStart(7)} ${fmt(c.ckaFirst, 3).padStart(7)} ${fmt(p?.network.testAccuracy, 3).padStart(8)} ${fmt(p?.kernelRegression.testAccuracy, 3).padStart(7)} ${fmt(p?.linearized.testAccuracy, 3).padStart(8)}`,
          );
        }
        const last = results.checkpoints[results.checkpoints.length - 1];
        if (last?.layers) {
          console.log(`per-layer contributions at ${last.id} (share of tr K, target alignment):`);
          for (const l of last.layers.layers) {
            console.log(
              `  ${l.name.padEnd(20)} ${l.rule.padEnd(16)} ${fmt(l.traceShare, 3).padStart(7)} ${fmt(l.targetAlignment, 3).padStart(7)}`,
            );
          }
        }
        console.log(`→ ${report ?? `${dir}/analysis.json`}`);
      });
    });
}
