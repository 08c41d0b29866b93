// Timed phases of a CI run, shared by .ci/phase.sh (bash) and scripts/test.mjs: each phase prints how long it took
// and appends "NAME<TAB>SECONDS<TAB>EXIT STATUS" to $TUNEFLOW_PHASE_LOG; phaseSummary() prints them all as a table.
// Phases that ran at the same time (timedPhasesTogether) add a fourth field, the names of the others, so that the
// table says they overlapped and the total counts their time once: the wall clock they took together.
import { appendFileSync, existsSync, readFileSync } from 'node:fs';

const minutesAndSeconds = (seconds) => `${Math.floor(seconds / 60)} min ${String(Math.round(seconds % 60)).padStart(2, '0')} s`;

function record(name, seconds, status, beside = []) {
  console.log(`[phase] ${name}: ${minutesAndSeconds(seconds)}${status === 0 ? '' : ` (failed, exit ${status})`}`);
  if (process.env.TUNEFLOW_PHASE_LOG) {
    appendFileSync(process.env.TUNEFLOW_PHASE_LOG, `${[name, Math.round(seconds), status, ...(beside.length ? [beside.join(', ')] : [])].join('\t')}\n`);
  }
}

/** Runs `run` (synchronous, returning { status }), prints and records its time; returns what `run` returned. */
export function timedPhase(name, run) {
  const started = performance.now();
  const result = run();
  record(name, (performance.now() - started) / 1000, result?.status ?? 0);
  return result;
}

/**
 * Runs phases at the same time, each `{ name, run }` with `run` returning a promise of { status }; records each one's
 * own time, marked as beside the others. Resolves to their results, in order.
 */
export async function timedPhasesTogether(phases) {
  const started = performance.now();
  return Promise.all(
    phases.map(async ({ name, run }) => {
      const result = await run();
      const beside = phases.map((phase) => phase.name).filter((other) => other !== name);
      record(name, (performance.now() - started) / 1000, result?.status ?? 0, beside);
      return result;
    }),
  );
}

/** Every phase recorded in $TUNEFLOW_PHASE_LOG and their total, one line each; nothing when there is no log. */
export function phaseSummary() {
  const log = process.env.TUNEFLOW_PHASE_LOG;
  if (!log || !existsSync(log)) return [];
  const phases = readFileSync(log, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [name, seconds, status, beside] = line.split('\t');
      return { name, seconds: Number(seconds), status: Number(status), beside: beside ? beside.split(', ') : [] };
    });
  // Phases that ran together started together: their wall clock is the longest of them, counted once.
  const counted = new Set();
  let total = 0;
  for (const phase of phases) {
    if (counted.has(phase.name)) continue;
    const together = phases.filter((other) => other.name === phase.name || phase.beside.includes(other.name));
    for (const member of together) counted.add(member.name);
    total += Math.max(...together.map((member) => member.seconds));
  }
  const width = Math.max(5, ...phases.map((phase) => phase.name.length));
  return [
    ...phases.map(
      (phase) =>
        `[phase] ${phase.name.padEnd(width)}  ${minutesAndSeconds(phase.seconds)}${phase.status === 0 ? '' : '  failed'}${phase.beside.length ? `  (at the same time as ${phase.beside.join(', ')})` : ''}`,
    ),
    `[phase] ${'total'.padEnd(width)}  ${minutesAndSeconds(total)}${phases.some((phase) => phase.beside.length) ? '  (phases run at the same time counted once, by the longest)' : ''}`,
  ];
}
