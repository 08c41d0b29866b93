import { userInfo } from 'node:os';
import { type Command, InvalidArgumentError } from 'commander';
import { describeVerdict, GateFailedError, judgeLines, promotionVerdict, scoresFromMetrics, verdictLines } from '../../quality/index.ts';
import { diffVersions, ModelRegistry, type ModelState, type ModelVersion } from '../../registry/index.ts';
import { homeLayout } from '../../runtime/home.ts';

/**
 * `tuneflow models list|show|promote|rollback|diff`: the registry in the artifact store of TUNEFLOW_HOME. Errors
 * (no such model, a lost compare-and-swap) are typed and end as one line from main.
 */

const print = (text: string): void => {
  process.stdout.write(`${text}\n`);
};
const json = (value: unknown) => print(JSON.stringify(value, null, 2));
const loss = (version: ModelVersion) => version.metrics.val_loss?.toFixed(4) ?? '—';

function versionNumber(value: string): number {
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed <= 0) throw new InvalidArgumentError('expected a version number (1, 2, …)');
  return parsed;
}

function summary(model: ModelState): string {
  const champion = model.champion ? `champion v${model.champion.version} (val loss ${loss(model.champion)})` : 'no champion';
  return `${model.name}  ${model.versions.length} version(s)  ${champion}`;
}

function describeVersion(version: ModelVersion, champion: number | undefined): string {
  const { lineage } = version;
  return [
    `${version.name} v${version.version}${version.version === champion ? ' (champion)' : ''}  created ${version.created_at}`,
    `  val loss ${loss(version)} on ${version.evaluated_on ?? '—'}`,
    ...(version.quality ? [`  ${describeVerdict(version.quality.verdict)}`] : []),
    ...judgeLines(scoresFromMetrics(version.metrics, 'own'), version.judged_against ?? {}).map((line) => `  ${line}`),
    `  base ${lineage.base_model} · spec ${lineage.spec_hash.slice(0, 12)} · data ${lineage.dataset_hash.slice(0, 12)} · workflow ${lineage.workflow_id}`,
    `  adapter ${version.adapter_uri}`,
    `  merged  ${version.merged_uri ?? '—'}`,
    ...version.exports.map((entry) => `  export  ${entry.format} ${entry.uri}`),
  ].join('\n');
}

export function registerModelsCommand(program: Command): Command {
  const registry = () => new ModelRegistry(homeLayout().artifactRoot);
  const models = program.command('models').description('The model registry: versions with lineage, champions, promote and roll back');

  models
    .command('list')
    .description('Every model name with its version count and champion')
    .option('--json', 'print JSON')
    .action(async (options: { json?: boolean }) => {
      const all = [...(await registry().models()).values()];
      if (options.json) return json(all.map(({ name, versions, champion }) => ({ name, versions: versions.length, champion: champion?.version ?? null })));
      print(all.length ? all.map(summary).join('\n') : 'no models registered yet (a retrain or `tuneflow models promote` adds them)');
    });

  models
    .command('show')
    .description("A model's versions and champion history, or one version's lineage")
    .argument('<name>', 'model name')
    .argument('[version]', 'version number', versionNumber)
    .option('--json', 'print JSON')
    .action(async (name: string, version: number | undefined, options: { json?: boolean }) => {
      const model = await registry().model(name);
      if (version !== undefined) {
        const found = await registry().version(name, version);
        return options.json ? json(found) : print(describeVersion(found, model.champion?.version));
      }
      if (options.json) return json(model);
      print(summary(model));
      for (const entry of model.versions) print(describeVersion(entry, model.champion?.version));
      for (const change of model.history) {
        print(
          `  ${change.at}  ${change.event} v${change.version}${change.previous ? ` (was v${change.previous})` : ''}${change.forced_by ? ` [forced by ${change.forced_by}]` : ''}${change.reason ? ` — ${change.reason}` : ''}`,
        );
      }
    });

  models
    .command('promote')
    .description("Make a version the champion, if its quality gates pass against the current champion (the spec's evaluate.gates)")
    .argument('<name>', 'model name')
    .argument('<version>', 'version number', versionNumber)
    .option('--expect-champion <version>', 'only if this is still the champion (compare-and-swap)', versionNumber)
    .option('--reason <text>', 'recorded in the history', 'promoted by hand')
    .option('--force', 'promote even though its gates fail; recorded in the history with who did it')
    .option('--by <user>', 'who overrides the gates (default: $TUNEFLOW_USER, else the login name)')
    .action(async (name: string, version: number, options: { expectChampion?: number; reason: string; force?: boolean; by?: string }) => {
      const model = await registry().model(name);
      const candidate = await registry().version(name, version);
      const verdict = promotionVerdict(candidate, model.champion);
      const failed = verdict !== null && !verdict.passed;
      if (failed && !options.force) {
        throw new GateFailedError(`${name} v${version} stays a challenger: ${describeVerdict(verdict)}`, { name, version, verdict });
      }
      const forcedBy = failed ? (options.by ?? process.env.TUNEFLOW_USER ?? userInfo().username) : undefined;
      const change = await registry().promote(name, version, {
        // The verdict was judged against this champion: the promotion holds only while it still is.
        expectedChampion: options.expectChampion ?? (verdict === null ? undefined : (model.champion?.version ?? null)),
        reason: failed ? `${options.reason}; forced by ${forcedBy} past ${describeVerdict(verdict)}` : options.reason,
        forcedBy,
      });
      print(
        `${name}: v${change.version} is the champion${change.previous ? ` (was v${change.previous}; \`tuneflow models rollback ${name}\` restores it)` : ''}${failed ? ` — forced by ${forcedBy} past failed gates` : ''}`,
      );
      // What it passed, each judge gate naming what the judge compared it with.
      if (verdict !== null && !failed) for (const line of verdictLines(verdict)) print(`  ${line}`);
    });

  models
    .command('rollback')
    .description('Restore the champion before the current one')
    .argument('<name>', 'model name')
    .option('--reason <text>', 'recorded in the history', 'rolled back by hand')
    .action(async (name: string, options: { reason: string }) => {
      const change = await registry().rollback(name, { reason: options.reason });
      print(`${name}: v${change.version} is the champion again (v${change.previous} demoted)`);
    });

  models
    .command('diff')
    .description('Lineage and metric differences between two versions')
    .argument('<name>', 'model name')
    .argument('<a>', 'version number', versionNumber)
    .argument('<b>', 'version number', versionNumber)
    .option('--json', 'print JSON')
    .action(async (name: string, a: number, b: number, options: { json?: boolean }) => {
      const diff = diffVersions(await registry().version(name, a), await registry().version(name, b));
      if (options.json) return json(diff);
      print(`${name} v${a} → v${b}${diff.comparable ? '' : ' (measured on different held-out sets: metrics do not compare)'}`);
      for (const change of diff.changed) print(`  ${change.field}: ${String(change.a)} → ${String(change.b)}`);
      for (const metric of diff.metrics) {
        print(
          `  ${metric.metric}: ${metric.a ?? '—'} → ${metric.b ?? '—'}${metric.delta === null ? '' : ` (${metric.delta >= 0 ? '+' : ''}${metric.delta.toFixed(4)})`}`,
        );
      }
    });
  return models;
}
