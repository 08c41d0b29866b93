/**
 * The live view of a run on stderr. On a terminal: a progress bar (cli-progress) with stage, step/total, loss,
 * tokens/s and ETA, and notes printed above it ("resumed from step 12"). Elsewhere (a log file, CI): a plain
 * line at each stage change and at most every 10 s, so a log stays readable.
 */
import cliProgress from 'cli-progress';
import type { RunStatusReport } from '../client.ts';
import { describeRollback } from '../../workflows/index.ts';
import { progressDetails, progressLine, runPlanLine } from './format.ts';
import { colours } from './output.ts';

export interface ProgressView {
  update(status: RunStatusReport): void;
  stop(): void;
}

const plainLineInterval = 10_000;

/**
 * What changed that deserves a line of its own: a resume (after a worker restart, a pause, a continue-as-new)
 * or a new attempt of the train activity (its worker was lost).
 */
function notesBetween(previous: RunStatusReport | undefined, current: RunStatusReport): string[] {
  const notes = [...runNotesBetween(previous, current)];
  if (previous === undefined) return current.resumes > 0 ? [...notes, `following a run resumed ${current.resumes}× so far`] : notes;
  if (current.status !== previous.status && (current.status === 'paused' || previous.status === 'paused')) notes.push(current.status);
  if ((current.train_attempt ?? 0) > (previous.train_attempt ?? 0) && previous.train_attempt !== null) {
    notes.push(`training attempt ${current.train_attempt}: the previous worker was lost`);
  }
  if (current.resumes > previous.resumes) {
    const redone = current.steps_redone - previous.steps_redone;
    notes.push(`resumed from step ${current.last_checkpoint?.step ?? 0}${redone > 0 ? ` (${redone} steps redone)` : ''}`);
  }
  for (const rollback of current.rollbacks.slice(previous.rollbacks.length)) notes.push(`rolled back: ${describeRollback(rollback)}`);
  return notes;
}

/** The runs in training, or about to: the one past 'waiting' and not yet done. */
const currentRun = (status: RunStatusReport) => status.runs?.find((run) => run.stage !== 'waiting' && run.stage !== 'done');
const allPlanned = (status: RunStatusReport | undefined) => status?.runs?.every((run) => run.plan !== null) === true;

/**
 * A workflow of several runs: every run's plan, once all are planned (before the first trains), and a line as
 * each run starts.
 */
function runNotesBetween(previous: RunStatusReport | undefined, current: RunStatusReport): string[] {
  if (current.runs === undefined) return [];
  const notes: string[] = [];
  if (allPlanned(current) && !allPlanned(previous)) notes.push(`plan of ${current.runs.length} runs:`, ...current.runs.map((run) => `  ${runPlanLine(run)}`));
  const run = currentRun(current);
  if (run !== undefined && run.name !== (previous === undefined ? undefined : currentRun(previous)?.name)) {
    const position = current.runs.indexOf(run) + 1;
    notes.push(`run ${run.name} (${position} of ${current.runs.length}, ${run.objective}${run.from === null ? '' : `, on ${run.from}'s merged model`})`);
  }
  return notes;
}

export function progressView(stream: NodeJS.WriteStream = process.stderr): ProgressView {
  return stream.isTTY ? terminalView(stream) : plainView(stream);
}

function terminalView(stream: NodeJS.WriteStream): ProgressView {
  const bars = new cliProgress.MultiBar(
    {
      stream,
      format: `${colours.stderr.cyan('{stage}')} {bar} {value}/{total} {details}`,
      barsize: 30,
      hideCursor: true,
      clearOnComplete: false,
      // Notes written with bars.log() need the bar redrawn below them.
      forceRedraw: true,
    },
    cliProgress.Presets.shades_classic,
  );
  const bar = bars.create(0, 0, { stage: 'starting', details: '' });
  let previous: RunStatusReport | undefined;
  return {
    update: (status) => {
      for (const note of notesBetween(previous, status)) bars.log(`${colours.stderr.yellow('●')} ${note}\n`);
      previous = status;
      if (status.total_steps !== null) bar.setTotal(status.total_steps);
      bar.update(status.step ?? 0, { stage: status.stage ?? status.status, details: progressDetails(status) });
    },
    stop: () => bars.stop(),
  };
}

function plainView(stream: NodeJS.WriteStream): ProgressView {
  let previous: RunStatusReport | undefined;
  let printed = '';
  let printedAt = 0;
  return {
    update: (status) => {
      const notes = notesBetween(previous, status);
      const stageChanged = previous === undefined || previous.stage !== status.stage;
      previous = status;
      for (const note of notes) stream.write(`${note}\n`);
      const line = progressLine(status);
      if (line === printed || (!stageChanged && notes.length === 0 && Date.now() - printedAt < plainLineInterval)) return;
      printed = line;
      printedAt = Date.now();
      stream.write(`${line}\n`);
    },
    stop: () => undefined,
  };
}
