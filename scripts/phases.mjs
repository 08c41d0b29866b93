// Timed phases of a test run (scripts/test.mjs): each phase prints how long it took and appends
// "NAME<TAB>STARTED<TAB>SECONDS<TAB>EXIT STATUS" to $TUNEFLOW_PHASE_LOG (STARTED: seconds after the run began).
// Phases run in lanes at the same time, so the table says when each began, and the total is the wall clock from
// the first start to the last end, not a sum.
import { appendFileSync, existsSync, readFileSync } from 'node:fs';

const minutesAndSeconds = (seconds) => `${Math.floor(seconds / 60)} min ${String(Math.round(seconds % 60)).padStart(2, '0')} s`;
const runStarted = performance.now();
const secondsSinceRunStarted = () => (performance.now() - runStarted) / 1000;

/** Runs `run` (returning a promise of { status }), prints and records its time; resolves to what `run` resolved to. */
export async function timedPhase(name, run) {
  const started = secondsSinceRunStarted();
  const result = await run();
  const seconds = secondsSinceRunStarted() - started;
  const status = result?.status ?? 0;
  console.log(`[phase] ${name}: ${minutesAndSeconds(seconds)}${status === 0 ? '' : ` (failed, exit ${status})`}`);
  if (process.env.TUNEFLOW_PHASE_LOG) {
    appendFileSync(process.env.TUNEFLOW_PHASE_LOG, `${[name, Math.round(started), Math.round(seconds), status].join('\t')}\n`);
  }
  return result;
}

/** Every phase recorded in $TUNEFLOW_PHASE_LOG and the wall clock they took, one line each; nothing when no log. */
export function phaseSummary() {
  const log = process.env.TUNEFLOW_PHASE_LOG;
  if (!log || !existsSync(log)) return [];
  const phases = readFileSync(log, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [name, started, seconds, status] = line.split('\t');
      return { name, started: Number(started), seconds: Number(seconds), status: Number(status) };
    });
  if (!phases.length) return [];
  const wallClock = Math.max(...phases.map((phase) => phase.started + phase.seconds)) - Math.min(...phases.map((phase) => phase.started));
  const width = Math.max(5, ...phases.map((phase) => phase.name.length));
  return [
    ...phases.map(
      (phase) =>
        `[phase] ${phase.name.padEnd(width)}  ${minutesAndSeconds(phase.seconds)}  from ${minutesAndSeconds(phase.started)}${phase.status === 0 ? '' : '  failed'}`,
    ),
    `[phase] ${'total'.padEnd(width)}  ${minutesAndSeconds(wallClock)}  (wall clock: the lanes run at the same time)`,
  ];
}
