// Timed phases of a CI run, shared by .ci/phase.sh (bash) and scripts/test.mjs: each phase prints how long it took
// and appends "NAME<TAB>SECONDS<TAB>EXIT STATUS" to $TUNEFLOW_PHASE_LOG; phaseSummary() prints them all as a table.
import { appendFileSync, existsSync, readFileSync } from 'node:fs';

const minutesAndSeconds = (seconds) => `${Math.floor(seconds / 60)} min ${String(Math.round(seconds % 60)).padStart(2, '0')} s`;

/** Runs `run` (synchronous, returning { status }), prints and records its time; returns what `run` returned. */
export function timedPhase(name, run) {
  const started = performance.now();
  const result = run();
  const seconds = (performance.now() - started) / 1000;
  const status = result?.status ?? 0;
  console.log(`[phase] ${name}: ${minutesAndSeconds(seconds)}${status === 0 ? '' : ` (failed, exit ${status})`}`);
  if (process.env.TUNEFLOW_PHASE_LOG) appendFileSync(process.env.TUNEFLOW_PHASE_LOG, `${name}\t${Math.round(seconds)}\t${status}\n`);
  return result;
}

/** Every phase recorded in $TUNEFLOW_PHASE_LOG and their total, one line each; nothing when there is no log. */
export function phaseSummary() {
  const log = process.env.TUNEFLOW_PHASE_LOG;
  if (!log || !existsSync(log)) return [];
  const phases = readFileSync(log, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [name, seconds, status] = line.split('\t');
      return { name, seconds: Number(seconds), status: Number(status) };
    });
  const total = phases.reduce((sum, phase) => sum + phase.seconds, 0);
  const width = Math.max(5, ...phases.map((phase) => phase.name.length));
  return [
    ...phases.map((phase) => `[phase] ${phase.name.padEnd(width)}  ${minutesAndSeconds(phase.seconds)}${phase.status === 0 ? '' : '  failed'}`),
    `[phase] ${'total'.padEnd(width)}  ${minutesAndSeconds(total)}`,
  ];
}
