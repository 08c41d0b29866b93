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
const isUri = (root: string): boolean => /^[a-z][a-z0-9+.-]*:\/\//i.test(root);

/** What a run directory holds itself: a named run's folder, nested in its workflow's, may not take these names. */
const runEntries = ['checkpoints', 'adapter', 'merged', 'exports', 'train_log.jsonl', 'run.json'];
const runNamePattern = /^[a-z0-9][a-z0-9._-]{0,62}$/i;

/**
 * `runs/<workflow id>/`: what one training run writes. A workflow's runs are values, not its id: the workflow's
 * default run (fineTune's only one) writes at `runs/<workflow id>/`, and each named run of a workflow that trains
 * several (SFT then DPO, two ranks) at `runs/<workflow id>/<run name>/`, each with its own checkpoints, adapter,
 * merged model and manifest.
 */
export class RunLayout {
  private constructor(readonly root: string) {}

  /** The directory of workflow `workflowId`'s run `runName` (its default run when null) under an artifact store root (URI or path). */
  static of(artifactRoot: string, workflowId: string, runName: string | null = null): RunLayout {
    // The id percent-escaped: an id holding '/' (a sweep's trials, `<sweep id>/trial-<parameters>`) stays one folder.
    const folder = encodeURIComponent(workflowId);
    // In a URI the folder name's own '%' is escaped once more: a reader decodes the URI once (Python's
    // `uri_to_path`, Node's `fileURLToPath`) and must get the folder name back, not a '/' that splits it in two.
    const workflowRoot = joined(artifactRoot, 'runs', isUri(artifactRoot) ? encodeURIComponent(folder) : folder);
    return new RunLayout(runName === null ? workflowRoot : joined(workflowRoot, runName));
  }

  /**
   * Why `name` cannot name a run, or null when it can: one path segment of letters, digits, '.', '_' and '-' (it
   * is a folder and part of the training workflow's id), and not a name the default run's folder already uses.
   */
  static runNameProblem(name: string): string | null {
    if (!runNamePattern.test(name)) return `run name ${JSON.stringify(name)} must be 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit`;
    if (runEntries.includes(name.toLowerCase())) return `run name ${JSON.stringify(name)} is taken by the run folder's own ${name}: choose another`;
    return null;
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
