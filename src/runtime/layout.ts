/**
 * Where things live in the artifact store (docs/artifacts.md): the only place TypeScript builds paths under
 * `runs/<id>/` and `datasets/<hash>/`. Python's twin is `RunLayout`/`DatasetLayout` in
 * python-activities/tuneflow_activities/artifacts.py, which also places what only Python writes (token ids,
 * checkpoints' insides).
 *
 * Pure string arithmetic, no Node built-ins: workflows build the run's URI with it inside the sandbox. Locations
 * join with '/', so the same functions serve file:// URIs (workflows, activities' requests) and POSIX paths (the
 * dataset store).
 */

const joined = (root: string, ...parts: string[]): string => [root.replace(/\/+$/, ''), ...parts].join('/');

/** `runs/<workflow id>/`: what one fine-tuning run writes. */
export class RunLayout {
  private constructor(readonly root: string) {}

  /** The run directory of workflow `workflowId` under an artifact store root (URI or path). */
  static of(artifactRoot: string, workflowId: string): RunLayout {
    return new RunLayout(joined(artifactRoot, 'runs', encodeURIComponent(workflowId)));
  }

  /** A run directory already located (a run_uri from a request). */
  static at(root: string): RunLayout {
    return new RunLayout(root.replace(/\/+$/, ''));
  }

  get checkpoints(): string {
    return joined(this.root, 'checkpoints');
  }

  get adapter(): string {
    return joined(this.root, 'adapter');
  }

  get merged(): string {
    return joined(this.root, 'merged');
  }

  get trainLog(): string {
    return joined(this.root, 'train_log.jsonl');
  }

  /** The run's manifest: spec, dataset report, plan, training result, checkpoints. */
  get manifest(): string {
    return joined(this.root, 'run.json');
  }
}

export const PreparedFile = { Train: 'train.jsonl', Val: 'val.jsonl', Report: 'report.json' } as const;
export type PreparedFile = (typeof PreparedFile)[keyof typeof PreparedFile];

/** `datasets/<hash>/`: one content-addressed prepared dataset. */
export class DatasetLayout {
  private constructor(readonly root: string) {}

  /** Where every prepared dataset of a store lives (and their temporary build directories). */
  static directory(storeRoot: string): string {
    return joined(storeRoot, 'datasets');
  }

  static of(storeRoot: string, hash: string): DatasetLayout {
    return new DatasetLayout(joined(DatasetLayout.directory(storeRoot), hash));
  }

  static at(root: string): DatasetLayout {
    return new DatasetLayout(root.replace(/\/+$/, ''));
  }

  file(name: PreparedFile): string {
    return joined(this.root, name);
  }
}
