/**
 * The retrain workflow's decisions with fake GPU activities and the real registry on a temporary artifact root:
 * skip when nothing changed, train and promote a first model, keep a better champion, score the champion on the
 * challenger's held-out set (on its own base when that differs), a gate's own judge, human approval (approve,
 * reject, no decision in time), a promotion that lost its compare-and-swap, and GGUF exports of a promoted model.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect } from 'vitest';
import { TaskQueue } from '../../src/contract/index.ts';
import { specHash } from '../../src/registry/lineage.ts';
import { ModelRegistry } from '../../src/registry/registry.ts';
import { loadSpec } from '../../src/spec/load.ts';
import type { RunSpec } from '../../src/spec/schema.ts';
import {
  approvalSignal,
  type GateEvaluationRequest,
  type RetrainGate,
  type RetrainInput,
  RetrainOutcome,
  type retrain,
  retrainStateQuery,
} from '../../workflows/index.ts';
import type { ActivityRequest } from './support/contract.ts';
import { type FakeRun, fakeDatasetHash } from './support/fake-run.ts';
import { testSpec } from './support/specs.ts';
import { eventually, judgeActivity, judgeQueue, useWorkflowTestbed } from './support/testbed.ts';

const { testbed, it } = useWorkflowTestbed();
const modelName = 'people';

interface Retraining {
  run: FakeRun;
  spec: RunSpec;
  specPath: string;
  root: string;
  registry: ModelRegistry;
}

/** A spec file (a schedule names one) and an empty registry for one retraining by the fakes of `run`. */
async function prepareRetraining(run: FakeRun, spec: RunSpec = testSpec()): Promise<Retraining> {
  const root = await testbed().artifactRootUri();
  const specPath = join(new URL(root).pathname, 'spec.yaml');
  // JSON is YAML: the spec as the product's parser made it, read back by the real loadRetrainSpec.
  await writeFile(specPath, JSON.stringify(spec));
  return { run, spec: loadSpec(specPath), specPath, root, registry: new ModelRegistry(root) };
}

/** A champion in the registry, trained from `spec` (or another) on the dataset the fake prepares. */
async function seedChampion(retraining: Retraining, options: { spec?: RunSpec; base?: string; valLoss: number }) {
  const spec = options.spec ?? retraining.spec;
  const champion = await retraining.registry.register({
    name: modelName,
    adapter_uri: `${retraining.root}/runs/champion/adapter`,
    merged_uri: `${retraining.root}/runs/champion/merged`,
    lineage: {
      spec_hash: specHash(spec),
      dataset_hash: fakeDatasetHash(spec.dataset.path),
      base_model: options.base ?? spec.model.source,
      parent_checkpoint: null,
      workflow_id: 'champion-train',
    },
    metrics: { val_loss: options.valLoss },
    evaluated_on: fakeDatasetHash(spec.dataset.path),
  });
  await retraining.registry.promote(modelName, champion.version, { reason: 'seeded by the test' });
  return champion;
}

/** The evaluate fake scores the champion's adapter at `champion`, the challenger's at `challenger`. */
function scoreAdapters(retraining: Retraining, losses: { champion: number; challenger: number }) {
  const evaluate = retraining.run.defaultHandler('evaluate');
  retraining.run.handlers.evaluate = async (request) => {
    const scored = await evaluate(request);
    const loss = request.adapter_uri.includes('/runs/champion/') ? losses.champion : losses.challenger;
    return { ...scored, tuned_val_loss: loss, tuned_perplexity: Math.exp(loss) };
  };
}

/** A spec judged by a local judge model, with a judge gate: the gate decides over the champion in retraining. */
const judgedSpec = (learningRate: number) =>
  testSpec({
    train: { learning_rate: learningRate },
    evaluate: { suites: [{ kind: 'judge', model: 'smollm2-135m-instruct' }, { kind: 'diversity' }], gates: ['judge.win_rate >= 0.55'] },
  });

const winRates = (winRate: number) => ({ win_rate: winRate, win_rate_lower: Math.max(0, winRate - 0.2), win_rate_upper: Math.min(1, winRate + 0.2) });

/**
 * The evaluate fake with suites, as the Python worker answers: the challenger's evaluation judges it against its base
 * (`againstBase`) and keeps its answers; the champion's, given those answers, judges them against the champion's
 * (`againstChampion`). The champion's loss is `championLoss`.
 */
function judgeAnswers(retraining: Retraining, rates: { againstBase: number; againstChampion: number; championLoss: number }) {
  const evaluate = retraining.run.defaultHandler('evaluate');
  retraining.run.handlers.evaluate = async (request) => {
    const scored = await evaluate(request);
    const isChampion = request.challenger !== undefined || request.adapter_uri.includes('/runs/champion/');
    const loss = isChampion ? rates.championLoss : 1.25;
    const judge = request.spec.evaluate.suites.some((suite) => suite.kind === 'judge')
      ? [
          {
            name: 'judge',
            kind: 'judge' as const,
            base: null,
            tuned: winRates(request.challenger ? rates.againstChampion : rates.againstBase),
            opponent: request.challenger ? { kind: 'champion' as const, version: request.challenger.champion_version } : { kind: 'base' as const },
          },
        ]
      : [];
    const answer = isChampion ? 'champion answer' : 'challenger answer';
    return {
      ...scored,
      tuned_val_loss: loss,
      tuned_perplexity: Math.exp(loss),
      suites: {
        rows: 2,
        references: 'validation',
        results: [
          ...judge,
          { name: 'diversity', kind: 'diversity', base: { distinct_ratio: 0.5, most_common_share: 0.5 }, tuned: { distinct_ratio: 1, most_common_share: 0.5 } },
        ],
        examples: [],
        ...(judge.length ? { answers: [0, 1].map((row) => ({ row, answer: `${answer} ${row}` })) } : {}),
      },
    };
  };
}

function startRetrain(retraining: Retraining, gate: Partial<RetrainGate> = {}, extra: Partial<RetrainInput> = {}, workflowId = retraining.run.workflowId) {
  const input: RetrainInput = {
    spec_path: retraining.specPath,
    model_name: modelName,
    artifact_root_uri: retraining.root,
    gate: { margin: 0.02, require_approval: false, approval_timeout: '1 day', ...gate },
    ...extra,
  };
  return testbed().client.workflow.start<typeof retrain>('retrain', {
    taskQueue: TaskQueue.Orchestration,
    workflowId,
    args: [input],
  });
}

const gpuActivities = ['resolve_model', 'token_statistics', 'train', 'merge', 'evaluate', 'export_gguf', 'verify_checkpoints'] as const;

describe.concurrent('retrain', () => {
  it('skips, touching no GPU and training nothing, when spec and data equal the champion’s', async ({ fakeRun }) => {
    const retraining = await prepareRetraining(fakeRun('retrain-skip'));
    const champion = await seedChampion(retraining, { valLoss: 1.0 });
    const result = await (await startRetrain(retraining)).result();
    expect(result).toMatchObject({ outcome: RetrainOutcome.Skipped, champion: { version: champion.version, val_loss: 1.0 }, challenger: null });
    expect(result.reason).toBe(`spec and dataset unchanged since champion v${champion.version}`);
    expect(retraining.run.sequence).toEqual(['loadRetrainSpec', 'prepareDataset', 'compareWithChampion']);
  });

  it('trains, registers and promotes a first model: no champion to beat', async ({ fakeRun }) => {
    const retraining = await prepareRetraining(fakeRun('retrain-first'));
    const handle = await startRetrain(retraining);
    const result = await handle.result();
    expect(result).toMatchObject({ outcome: RetrainOutcome.Promoted, reason: 'no champion to beat', champion: null });
    expect(result.challenger).toEqual({ version: 1, val_loss: 1.25, train_workflow_id: `${retraining.run.workflowId}-train` });
    const champion = await retraining.registry.champion(modelName);
    expect(champion).toMatchObject({ version: 1, lineage: { workflow_id: `${retraining.run.workflowId}-train`, base_model: 'tiny-random-llama' } });
    expect(champion?.metrics).toMatchObject({ val_loss: 1.25, base_val_loss: 2.5 });
    expect(await handle.query(retrainStateQuery)).toMatchObject({ stage: 'done', result: { outcome: RetrainOutcome.Promoted } });
  });

  it('keeps a better champion, scored on the challenger’s held-out set; the challenger is registered anyway', async ({ fakeRun }) => {
    const retraining = await prepareRetraining(fakeRun('retrain-worse'), testSpec({ train: { learning_rate: 0.01 } }));
    await seedChampion(retraining, { spec: testSpec(), valLoss: 1.0 });
    scoreAdapters(retraining, { champion: 1.0, challenger: 1.25 });
    const result = await (await startRetrain(retraining)).result();
    expect(result.outcome).toBe(RetrainOutcome.NotPromoted);
    expect(result.reason).toBe('val loss 1.2500 > 0.9800 (champion 1.0000 × (1 − 0.02))');
    expect(result.challenger).toMatchObject({ version: 2, val_loss: 1.25 });
    expect((await retraining.registry.champion(modelName))?.version).toBe(1);
    // Registered with the champion's score on the same held-out set, so `models show` tells why it lost.
    const challenger = await retraining.registry.version(modelName, 2);
    expect(challenger.metrics).toMatchObject({ val_loss: 1.25, champion_val_loss: 1.0 });
    expect(challenger.evaluated_on).toBe(result.dataset_hash);
    const [challengerEvaluation, championEvaluation] = retraining.run.callsTo('evaluate').map((call) => call.request as ActivityRequest<'evaluate'>);
    expect(championEvaluation!.adapter_uri).toContain('/runs/champion/');
    expect(championEvaluation!.val_tokens_uri).toBe(challengerEvaluation!.val_tokens_uri);
    expect(championEvaluation!.spec.evaluate.sample_prompts).toEqual([]);
  });

  it('scores a champion on another base with that base’s own tokens of the same held-out rows', async ({ fakeRun }) => {
    const retraining = await prepareRetraining(fakeRun('retrain-other-base'), testSpec({ train: { learning_rate: 0.01 } }));
    await seedChampion(retraining, { spec: testSpec(), base: 'smollm2-135m-instruct', valLoss: 1.5 });
    scoreAdapters(retraining, { champion: 1.5, challenger: 1.25 });
    const result = await (await startRetrain(retraining)).result();
    expect(result.outcome).toBe(RetrainOutcome.Promoted);
    const resolved = retraining.run.callsTo('resolve_model').map((call) => (call.request as ActivityRequest<'resolve_model'>).spec.model.source);
    expect(resolved).toEqual(['tiny-random-llama', 'smollm2-135m-instruct']);
    const tokenised = retraining.run.callsTo('token_statistics').map((call) => call.request as ActivityRequest<'token_statistics'>);
    expect(tokenised).toHaveLength(2);
    expect(tokenised[1]!.val_uri).toBe(tokenised[0]!.val_uri);
    expect(tokenised[1]!.tokenizer_identity).not.toBe(tokenised[0]!.tokenizer_identity);
    const championEvaluation = retraining.run.callsTo('evaluate').at(-1)!.request as ActivityRequest<'evaluate'>;
    expect(championEvaluation.model_uri).toContain('smollm2-135m-instruct');
    expect(championEvaluation.val_tokens_uri).not.toBe((retraining.run.callsTo('evaluate')[0]!.request as ActivityRequest<'evaluate'>).val_tokens_uri);
  });

  it('asks the gate’s own judge after the loss gate, and does not promote when it says no', async ({ fakeRun }) => {
    const retraining = await prepareRetraining(fakeRun('retrain-judge'));
    const judged: GateEvaluationRequest[] = [];
    retraining.run.judge = async (request) => {
      judged.push(request);
      return { passes: false, reason: 'answers are not valid JSON' };
    };
    const result = await (await startRetrain(retraining, { evaluation: { activity: judgeActivity, task_queue: judgeQueue } })).result();
    expect(judged).toHaveLength(1);
    expect(judged[0]).toMatchObject({ model_name: modelName, challenger: { version: 1 }, champion: null });
    expect(judged[0]!.val_uri).toMatch(/val\.jsonl$/);
    expect(result).toMatchObject({ outcome: RetrainOutcome.NotPromoted, reason: `${judgeActivity}: answers are not valid JSON` });
    expect(await retraining.registry.champion(modelName)).toBeNull();
  });

  it('judges the challenger against the champion (whose evaluation gets its answers); the judge gate decides on that score', async ({ fakeRun }) => {
    const retraining = await prepareRetraining(fakeRun('retrain-judge-champion'), judgedSpec(0.01));
    await seedChampion(retraining, { spec: judgedSpec(0.02), valLoss: 2.0 });
    // It beats its base by far, and loses to the champion.
    judgeAnswers(retraining, { againstBase: 0.9, againstChampion: 0.4, championLoss: 2.0 });
    const result = await (await startRetrain(retraining)).result();
    const [challengerEvaluation, championEvaluation] = retraining.run.callsTo('evaluate').map((call) => call.request as ActivityRequest<'evaluate'>);
    expect(challengerEvaluation!.challenger).toBeUndefined();
    // The champion answers and the judge compares: the challenger's answers travel, nothing answers twice.
    expect(championEvaluation!.challenger).toEqual({
      champion_version: 1,
      answers: [
        { row: 0, answer: 'challenger answer 0' },
        { row: 1, answer: 'challenger answer 1' },
      ],
    });
    expect(championEvaluation!.spec.evaluate.suites.map((suite) => suite.kind)).toEqual(['judge', 'diversity']);
    expect(result.outcome).toBe(RetrainOutcome.NotPromoted);
    expect(result.reason).toBe('val loss 1.2500 ≤ 1.9600 (champion 2.0000 × (1 − 0.02)), but gates failed: judge.win_rate 0.4 not >= 0.55 against champion v1');
    expect(result.quality?.checks[0]).toMatchObject({ passed: false, value: 0.4, against: { kind: 'champion', version: 1 } });
    expect(result.judged_against).toEqual({ judge: { kind: 'champion', version: 1 } });
    expect((await retraining.registry.champion(modelName))?.version).toBe(1);
    // The registered challenger holds its score against the champion and says so; the champion's own scores hold no judge.
    const challenger = await retraining.registry.version(modelName, 2);
    expect(challenger.judged_against).toEqual({ judge: { kind: 'champion', version: 1 } });
    expect(challenger.metrics).toMatchObject({ 'judge.win_rate': 0.4, 'champion.diversity.distinct_ratio': 1 });
    expect(Object.keys(challenger.metrics).filter((key) => key.includes('judge'))).toEqual(['judge.win_rate', 'judge.win_rate_lower', 'judge.win_rate_upper']);
  });

  it('promotes a challenger that beats the champion by the judge; a first model is judged against its base', async ({ fakeRun }) => {
    const retraining = await prepareRetraining(fakeRun('retrain-judge-wins'), judgedSpec(0.01));
    // No champion yet: its evaluation judges it against its base, which decides (and is recorded as such).
    judgeAnswers(retraining, { againstBase: 0.6, againstChampion: 0.7, championLoss: 2.0 });
    const first = await (await startRetrain(retraining)).result();
    expect(first.outcome).toBe(RetrainOutcome.Promoted);
    expect(first.reason).toBe('no champion to beat; gates passed: judge.win_rate 0.6 >= 0.55 against the base');
    expect(first.judged_against).toEqual({ judge: { kind: 'base' } });
    expect(retraining.run.callsTo('evaluate')).toHaveLength(1);

    // The spec changes: the next retrain judges against v1, and its 0.7 promotes it.
    await writeFile(retraining.specPath, JSON.stringify(judgedSpec(0.02)));
    const second = await (await startRetrain(retraining, {}, {}, `${retraining.run.workflowId}-again`)).result();
    expect(second.outcome).toBe(RetrainOutcome.Promoted);
    expect(second.reason).toMatch(/gates passed: judge\.win_rate 0\.7 >= 0\.55 against champion v1$/);
    expect((await retraining.registry.champion(modelName))?.judged_against).toEqual({ judge: { kind: 'champion', version: 1 } });
  });

  it('waits for approval, showing the proposal, and promotes when approved', async ({ fakeRun }) => {
    const retraining = await prepareRetraining(fakeRun('retrain-approve'), testSpec({ train: { learning_rate: 0.01 } }));
    await seedChampion(retraining, { spec: testSpec(), valLoss: 2.0 });
    scoreAdapters(retraining, { champion: 2.0, challenger: 1.25 });
    const handle = await startRetrain(retraining, { require_approval: true });
    const waiting = await eventually(async () => {
      const state = await handle.query(retrainStateQuery);
      return state.stage === 'awaiting_approval' ? state : undefined;
    }, 'the approval stage');
    expect(waiting.proposal).toEqual({ challenger: 2, challenger_val_loss: 1.25, champion: 1, champion_val_loss: 2.0 });
    expect(retraining.run.callsTo('promoteModel')).toHaveLength(0);
    await handle.signal(approvalSignal, { approved: true, by: 'ana' });
    const result = await handle.result();
    expect(result.outcome).toBe(RetrainOutcome.Promoted);
    expect((await retraining.registry.champion(modelName))?.version).toBe(2);
  });

  it('does not promote when the reviewer rejects, and says who and why', async ({ fakeRun }) => {
    const retraining = await prepareRetraining(fakeRun('retrain-reject'));
    const handle = await startRetrain(retraining, { require_approval: true });
    await eventually(async () => ((await handle.query(retrainStateQuery)).stage === 'awaiting_approval' ? true : undefined), 'the approval stage');
    await handle.signal(approvalSignal, { approved: false, by: 'ana', reason: 'too verbose' });
    const result = await handle.result();
    expect(result).toMatchObject({ outcome: RetrainOutcome.Rejected, reason: 'rejected by ana: too verbose' });
    expect(await retraining.registry.champion(modelName)).toBeNull();
  });

  it('does not promote when nobody decides within the approval timeout', async ({ fakeRun }) => {
    const retraining = await prepareRetraining(fakeRun('retrain-timeout'));
    const result = await (await startRetrain(retraining, { require_approval: true, approval_timeout: '300 milliseconds' })).result();
    expect(result).toMatchObject({ outcome: RetrainOutcome.Rejected, reason: 'no decision within 300 milliseconds' });
    expect(retraining.run.callsTo('promoteModel')).toHaveLength(0);
  });

  it('reports superseded when another promotion replaced the champion while it awaited approval', async ({ fakeRun }) => {
    const retraining = await prepareRetraining(fakeRun('retrain-superseded'));
    const handle = await startRetrain(retraining, { require_approval: true });
    await eventually(async () => ((await handle.query(retrainStateQuery)).stage === 'awaiting_approval' ? true : undefined), 'the approval stage');
    // Someone promotes another model meanwhile (a rollback, another schedule).
    const other = await seedChampion(retraining, { valLoss: 0.5 });
    await handle.signal(approvalSignal, { approved: true, by: 'ana' });
    const result = await handle.result();
    expect(result.outcome).toBe(RetrainOutcome.Superseded);
    expect((await retraining.registry.champion(modelName))?.version).toBe(other.version);
  });

  it('exports GGUF files of a promoted model’s merged weights and records them in the registry', async ({ fakeRun }) => {
    const retraining = await prepareRetraining(fakeRun('retrain-export'));
    const result = await (await startRetrain(retraining, {}, { export_formats: ['q8_0'] })).result();
    expect(result.outcome).toBe(RetrainOutcome.Promoted);
    const [exported] = retraining.run.callsTo('export_gguf').map((call) => call.request as ActivityRequest<'export_gguf'>);
    expect(exported).toMatchObject({ formats: ['q8_0'], name: `${modelName}-v1` });
    expect(exported!.model_uri).toMatch(/\/merged$/);
    const version = await retraining.registry.version(modelName, 1);
    expect(version.exports.map((entry) => entry.format)).toEqual(['q8_0']);
    expect(
      retraining.run.calls
        .filter((call) => (gpuActivities as readonly string[]).includes(call.activity))
        .every((call) => call.taskQueue !== TaskQueue.Orchestration),
    ).toBe(true);
  });
});
