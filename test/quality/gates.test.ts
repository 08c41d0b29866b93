/** Gate parsing (with the spec, naming the field), evaluation in one place, and `tuneflow models promote` obeying them. */
import { execFile } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import {
  comparedScores,
  evaluateGates,
  type Gate,
  judgeLines,
  parseGate,
  promotionVerdict,
  type SuiteEvaluation,
  type SuiteResult,
  suiteScoreRows,
  verdictLines,
} from '../../src/quality/index.ts';
import { ModelRegistry, type NewModelVersion } from '../../src/registry/index.ts';
import { homeLayout } from '../../src/runtime/home.ts';
import { parseSpec } from '../../src/spec/load.ts';
import { exampleVersion } from '../registry/example-version.ts';

const baseSpec = { model: { source: 'tiny-random-llama' }, dataset: { path: 'data.jsonl' } };
const specWith = (evaluate: Record<string, unknown>) => parseSpec({ ...baseSpec, evaluate }, '/tmp');
const gate = (text: string): Gate => {
  const parsed = parseGate(text);
  if ('error' in parsed) throw new Error(parsed.error);
  return parsed;
};

describe('gate parsing', () => {
  it('reads absolute, base- and champion-relative thresholds', () => {
    expect(gate('json.field_accuracy >= champion + 0.02')).toEqual({
      gate: 'json.field_accuracy >= champion + 0.02',
      suite: 'json',
      metric: 'field_accuracy',
      comparator: '>=',
      reference: 'champion',
      offset: 0.02,
    });
    expect(gate(' diversity.most_common_share<=0.5 ')).toMatchObject({ reference: 'absolute', offset: 0.5, comparator: '<=' });
    expect(gate('exact.exact_match > base - .1')).toMatchObject({ suite: 'exact', reference: 'base', offset: -0.1, comparator: '>' });
    expect(parseGate('json.field_accuracy => 3')).toHaveProperty('error');
    expect(parseGate('field_accuracy >= 0.5')).toHaveProperty('error');
  });

  it('is parsed with the spec, and a parsed spec parses again to the same gates', () => {
    const spec = specWith({ suites: [{ kind: 'json' }, { kind: 'diversity' }], gates: ['json.field_accuracy >= base + 0.1'] });
    expect(spec.evaluate.gates).toEqual([gate('json.field_accuracy >= base + 0.1')]);
    expect(parseSpec(spec, '/tmp').evaluate.gates).toEqual(spec.evaluate.gates);
  });

  it('refuses unknown suites and metrics, naming the field', () => {
    expect(() => specWith({ suites: [{ kind: 'json' }], gates: ['json.accuracy >= 0.5'] })).toThrow(
      /evaluate\.gates\.0: gate "json\.accuracy >= 0\.5": a json suite has no metric "accuracy" \(it has parse_rate, schema_valid_rate, field_accuracy\)/,
    );
    expect(() => specWith({ suites: [{ kind: 'json' }], gates: ['diversity.distinct_ratio >= 0.5'] })).toThrow(
      /evaluate\.gates\.0: .*names suite "diversity", but evaluate\.suites declares "json"/,
    );
    expect(() => specWith({ gates: ['json.field_accuracy >= nonsense'] })).toThrow(/evaluate\.gates\.0: "json\.field_accuracy >= nonsense" is not a gate/);
    expect(() => specWith({ suites: [{ kind: 'json' }, { kind: 'json' }] })).toThrow(/evaluate\.suites\.1\.name: two suites are named "json"/);
    expect(() => specWith({ suites: [{ kind: 'judge', model: 'smollm2-135m-instruct' }], gates: ['judge.win_rate >= base'] })).toThrow(
      /compare its win_rate with a number/,
    );
    expect(() => specWith({ suites: [{ kind: 'judge' }] })).toThrow(/give exactly one of model, endpoint/);
  });
});

describe('evaluateGates', () => {
  const gates = ['json.field_accuracy >= champion + 0.02', 'json.field_accuracy >= base + 0.2', 'diversity.most_common_share <= 0.5'].map(gate);

  it('passes a better, varied candidate and fails a constant one, saying why', () => {
    const base = { 'json.field_accuracy': 0.1, 'diversity.most_common_share': 0.1 };
    const good = evaluateGates(gates, {
      candidate: { 'json.field_accuracy': 0.9, 'diversity.most_common_share': 0.05 },
      base,
      champion: { 'json.field_accuracy': 0.85 },
    });
    expect(good.passed).toBe(true);
    expect(good.checks.map((check) => check.threshold)).toEqual([0.87, expect.closeTo(0.3), 0.5]);

    const constant = evaluateGates(gates, {
      candidate: { 'json.field_accuracy': 0.25, 'diversity.most_common_share': 1 },
      base,
      champion: null,
      champion_version: null,
    });
    expect(constant.passed).toBe(false);
    expect(constant.checks.map((check) => check.passed)).toEqual([true, false, false]);
    expect(constant.checks[0]!.reason).toBe('json.field_accuracy >= champion + 0.02: no champion to compare with');
    expect(constant.checks[2]!.reason).toBe('diversity.most_common_share 1 not <= 0.5');
  });

  it('fails a gate whose score is missing', () => {
    const verdict = evaluateGates([gate('json.field_accuracy >= 0.5')], { candidate: {}, base: {}, champion: null });
    expect(verdict.checks[0]).toMatchObject({ passed: false, reason: 'json.field_accuracy >= 0.5: the candidate has no json.field_accuracy score' });
  });
});

describe('side by side', () => {
  it('lists each suite metric for base, champion and candidate, and one line per gate', () => {
    const suites: SuiteEvaluation = {
      rows: 2,
      references: 'validation',
      results: [
        {
          name: 'json',
          kind: 'json',
          base: { parse_rate: 0.5, schema_valid_rate: 0.5, field_accuracy: 0.25 },
          tuned: { parse_rate: 1, schema_valid_rate: 1, field_accuracy: 0.875 },
        },
        { name: 'judge', kind: 'judge', base: null, tuned: { win_rate: 0.75, win_rate_lower: 0.3, win_rate_upper: 0.95 } },
      ],
      examples: [],
    };
    const rows = suiteScoreRows(suites, { 'json.field_accuracy': 0.8 });
    expect(rows[2]).toEqual({ metric: 'json.field_accuracy', base: '0.250', champion: '0.800', candidate: '0.875' });
    // A judge's rows name its opponent (a record from before opponents were recorded compared with the base).
    expect(rows[3]).toEqual({ metric: 'judge.win_rate against the base', base: '—', champion: '—', candidate: '0.750' });
    const retrained = suiteScoreRows(suites, null, { scores: { 'judge.win_rate': 0.4 }, against: { judge: { kind: 'champion', version: 3 } } });
    expect(retrained.at(-3)).toEqual({ metric: 'judge.win_rate against champion v3', base: '—', champion: '—', candidate: '0.400' });
    const verdict = evaluateGates([gate('json.field_accuracy >= champion + 0.1')], {
      candidate: { 'json.field_accuracy': 0.875 },
      base: {},
      champion: { 'json.field_accuracy': 0.8 },
    });
    expect(verdictLines(verdict)).toEqual(['FAIL  json.field_accuracy 0.875 not >= 0.9 (champion 0.8 + 0.1)']);
  });
});

const judgeResult = (winRate: number, opponent: SuiteResult['opponent']): SuiteResult => ({
  name: 'judge',
  kind: 'judge',
  base: null,
  tuned: { win_rate: winRate, win_rate_lower: winRate - 0.2, win_rate_upper: winRate + 0.2 },
  opponent,
});
const jsonResult = (base: number, tuned: number): SuiteResult => ({
  name: 'json',
  kind: 'json',
  base: { parse_rate: 1, schema_valid_rate: 1, field_accuracy: base },
  tuned: { parse_rate: 1, schema_valid_rate: 1, field_accuracy: tuned },
});
const evaluation = (...results: SuiteResult[]): SuiteEvaluation => ({ rows: 4, references: 'validation', results, examples: [] });

describe('the judge in retraining', () => {
  // The challenger's own evaluation: it beats its base by far. The champion's (v1): the challenger's answers lose to the champion's.
  const challenger = evaluation(jsonResult(0.2, 0.7), judgeResult(0.9, { kind: 'base' }));
  const champion = evaluation(jsonResult(0.2, 0.6), judgeResult(0.4, { kind: 'champion', version: 1 }));

  it('takes the judge against the champion for the candidate, and keeps it out of the champion’s own scores', () => {
    const scores = comparedScores(challenger, { version: 1, suites: champion });
    expect(scores.candidate).toMatchObject({ 'judge.win_rate': 0.4, 'json.field_accuracy': 0.7 });
    expect(scores.champion).toEqual({ 'json.parse_rate': 1, 'json.schema_valid_rate': 1, 'json.field_accuracy': 0.6 });
    expect(scores.base).toEqual({ 'json.parse_rate': 1, 'json.schema_valid_rate': 1, 'json.field_accuracy': 0.2 });
    expect(scores.judged_against).toEqual({ judge: { kind: 'champion', version: 1 } });
    expect(judgeLines(scores.candidate, scores.judged_against)).toEqual(['judge: win rate 0.400 [0.200, 0.600] against champion v1']);
    // No champion (a first model): against its base.
    expect(comparedScores(challenger, null)).toMatchObject({
      candidate: { 'judge.win_rate': 0.9 },
      champion: null,
      judged_against: { judge: { kind: 'base' } },
    });
  });

  it('decides a judge gate on the score against the champion, and fails one judged against anything else while a champion exists', () => {
    const gates = [gate('judge.win_rate >= 0.55'), gate('json.field_accuracy >= champion + 0.02')];
    const verdict = evaluateGates(gates, comparedScores(challenger, { version: 1, suites: champion }));
    expect(verdict.checks[0]).toMatchObject({ passed: false, value: 0.4, against: { kind: 'champion', version: 1 } });
    expect(verdictLines(verdict)).toEqual([
      'FAIL  judge.win_rate 0.4 not >= 0.55 against champion v1',
      'PASS  json.field_accuracy 0.7 >= 0.62 (champion 0.6 + 0.02)',
    ]);
    // A champion evaluation without the judge (a history from before): the challenger's judge is against its base only.
    const againstBase = evaluateGates(gates, comparedScores(challenger, { version: 1, suites: evaluation(jsonResult(0.2, 0.6)) }));
    expect(againstBase.checks[0]).toMatchObject({ passed: false, value: 0.9, reason: 'judge.win_rate >= 0.55: judged against the base, not the champion v1' });
    // A run (no champion): the judge against its base decides, and says so.
    expect(verdictLines(evaluateGates([gates[0]!], comparedScores(challenger, null)))).toEqual(['PASS  judge.win_rate 0.9 >= 0.55 against the base']);
  });

  it('`models promote` fails a judge gate judged against another champion than the current one', () => {
    const gates = [gate('judge.win_rate >= 0.55')];
    const scores = comparedScores(challenger, { version: 1, suites: evaluation(jsonResult(0.2, 0.6), judgeResult(0.7, { kind: 'champion', version: 1 })) });
    const version = exampleVersion('people', { workflowId: 'run-3', valLoss: 1 });
    const registered = {
      ...version,
      version: 3,
      exports: [],
      created_at: 'now',
      metrics: { ...version.metrics, 'judge.win_rate': 0.7 },
      quality: { gates, verdict: evaluateGates(gates, scores) },
      judged_against: scores.judged_against,
    };
    const championV1 = { ...exampleVersion('people', { workflowId: 'run-1', valLoss: 1 }), version: 1, exports: [], created_at: 'now' };
    expect(promotionVerdict(registered, championV1)).toMatchObject({ passed: true, checks: [{ reason: 'judge.win_rate 0.7 >= 0.55 against champion v1' }] });
    const championV2 = { ...championV1, version: 2 };
    expect(promotionVerdict(registered, championV2)).toMatchObject({
      passed: false,
      champion_version: 2,
      checks: [{ reason: 'judge.win_rate >= 0.55: judged against champion v1, not the champion v2' }],
    });
  });
});

const cli = fileURLToPath(new URL('../../scripts/tuneflow.mjs', import.meta.url));

function gatedVersion(workflowId: string, fieldAccuracy: number, champion: { version: number; fieldAccuracy: number } | null): NewModelVersion {
  const gates = [gate('json.field_accuracy >= champion + 0.02')];
  const scores = { candidate: { 'json.field_accuracy': fieldAccuracy }, base: { 'json.field_accuracy': 0.1 } };
  const championScores = champion ? { 'json.field_accuracy': champion.fieldAccuracy } : null;
  const version = exampleVersion('people', { workflowId, valLoss: 1 });
  return {
    ...version,
    metrics: { ...version.metrics, 'json.field_accuracy': fieldAccuracy, 'base.json.field_accuracy': 0.1 },
    quality: { gates, verdict: evaluateGates(gates, { ...scores, champion: championScores, champion_version: champion?.version ?? null }) },
  };
}

describe('promotion by gates', () => {
  it('judges again when the champion changed since registration', () => {
    const challenger = { ...gatedVersion('run-2', 0.8, null), version: 2, exports: [], created_at: 'now' };
    expect(promotionVerdict(challenger, null)?.passed).toBe(true);
    const strongerChampion = { ...exampleVersion('people', { workflowId: 'run-1', valLoss: 1 }), version: 1, exports: [], created_at: 'now' };
    strongerChampion.metrics = { ...strongerChampion.metrics, 'json.field_accuracy': 0.79 };
    expect(promotionVerdict(challenger, strongerChampion)).toMatchObject({ passed: false, champion_version: 1 });
    const elsewhere = { ...strongerChampion, evaluated_on: 'heldout-b' };
    expect(promotionVerdict(challenger, elsewhere)?.checks[0]?.reason).toMatch(
      /the champion has no json\.field_accuracy score \(champion v1 was measured on another held-out set\)/,
    );
  });

  it('`tuneflow models promote` refuses a failed gate (exit 1), and --force records who overrode it', async () => {
    const home = await mkdtemp(join(tmpdir(), 'tuneflow-gates-'));
    const registry = new ModelRegistry(homeLayout(home).artifactRoot);
    await registry.register(gatedVersion('run-1', 0.6, null));
    await registry.promote('people', 1);
    // Its judge compared it with champion v1 (retraining): `models show` says so beside the score.
    const challenger = gatedVersion('run-2', 0.61, { version: 1, fieldAccuracy: 0.6 });
    await registry.register({
      ...challenger,
      metrics: { ...challenger.metrics, 'judge.win_rate': 0.7, 'judge.win_rate_lower': 0.5, 'judge.win_rate_upper': 0.85 },
      judged_against: { judge: { kind: 'champion', version: 1 } },
    });
    const tuneflow = (...args: string[]) =>
      promisify(execFile)(process.execPath, [cli, 'models', ...args], {
        env: { ...process.env, TUNEFLOW_HOME: home, TUNEFLOW_USER: 'ana' },
        encoding: 'utf8',
      }).then(
        ({ stdout }) => ({ code: 0, stdout, stderr: '' }),
        (error: { code: number; stdout: string; stderr: string }) => error,
      );

    const refused = await tuneflow('promote', 'people', '2');
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(
      '[tuneflow] error: people v2 stays a challenger: gates failed: json.field_accuracy 0.61 not >= 0.62 (champion 0.6 + 0.02)',
    );
    expect((await registry.champion('people'))?.version).toBe(1);
    expect((await tuneflow('show', 'people', '2')).stdout).toContain('\n  judge: win rate 0.700 [0.500, 0.850] against champion v1\n');

    expect((await tuneflow('promote', 'people', '2', '--force')).stdout).toBe(
      'people: v2 is the champion (was v1; `tuneflow models rollback people` restores it) — forced by ana past failed gates\n',
    );
    const [, forced] = (await registry.model('people')).history;
    expect(forced).toMatchObject({ event: 'promoted', version: 2, forced_by: 'ana' });
    expect(forced?.reason).toMatch(/^promoted by hand; forced by ana past gates failed: json\.field_accuracy 0\.61 not >= 0\.62/);
  }, 120_000);
});
