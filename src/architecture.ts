/**
 * The stage order of src/, written once: each folder may import only from the folders listed
 * before it, and from the root file errors.ts; src/index.ts (the public barrel) may import every
 * folder. A folder is entered through its index.ts only — an import from another folder names
 * `../<folder>/index.js`, never a file inside it. test/architecture.test.ts parses the imports of
 * src/**\/*.ts and fails on an upward import, an import cycle or a deep cross-folder import.
 *
 * A new layer rule is an edit of this list: a new folder goes at the place its imports allow.
 */
export const STAGES = [
  'util', //         atomic writes, file helpers, seeded RNG, statistics, progress, WebAssembly assembler
  'io', //           array files: .npy, .npz, safetensors, JSON arrays
  'backend', //      the tfjs backend and its kernel fixes
  'data', //         datasets: built-in, CSV/NPZ/JSON files, synthetic; splits and transforms
  'model', //        model specs, layers, building, saving and loading
  'kernel', //       the eNTK engine (structured, Jacobian, WebAssembly, worker pool)
  'embed', //        frozen transformers.js backbones and user models as feature extractors
  'train', //        training runs with checkpoints (the run directory)
  'kernel-store', // kernels of checkpoints over point sets on disk: compute, shard, merge, export
  'dynamics', //     fitness operator, equation (1), POP-MU, POP-ODE, DOPRI5
  'finetune', //     recorded finetunes (kernels as kernel stores) and the store → operator bridge
  'compare', //      the predictor registry, predictions and metrics of a recording
  'report', //       figures, tables and the self-contained HTML report
  'analysis', //     what to do with a kernel: MSE/CE predictions, spectrum (Lanczos), alignment, CKA
  'experiment', //   studies (the study registry), resumable stages, the experiment runner
  'cli', //          the entk command line
] as const;
