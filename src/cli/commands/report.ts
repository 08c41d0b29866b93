import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { connectClient } from '../../client.ts';
import { ModelRegistry } from '../../registry/index.ts';
import { writeRunReport } from '../../report/index.ts';
import { homeLayout } from '../../runtime/home.ts';
import { log, printJson } from '../output.ts';
import { completedResult, runDirectory } from '../runs.ts';
import { examples } from './examples.ts';

/** `tuneflow report ID`: the run's HTML report, written into the run's directory unless --out says otherwise. */
export function registerReportCommand(program: Command): void {
  program
    .command('report')
    .description(
      'Write a completed run as one self-contained HTML page with SVG and PNG charts (loss, learning rate, throughput), plan vs actual, base vs tuned, samples and artifacts',
    )
    .argument('<id>', 'workflow id of a completed run')
    .option('--out <dir>', "where to write index.html and charts/ (default: the run directory's report/)")
    .option('--json', 'print the written paths as JSON')
    .addHelpText('after', examples(['tuneflow report my-run', 'tuneflow report my-run --out /tmp/my-run-report && chromium /tmp/my-run-report/index.html']))
    .action(async (workflowId: string, options: { out?: string; json?: boolean }) => {
      const client = await connectClient();
      try {
        const result = await completedResult(client, workflowId);
        const directory = await runDirectory(client, workflowId);
        // A retrain registers its challenger under its training child's id: that version holds the champion's scores.
        const models = await new ModelRegistry(homeLayout().artifactRoot).models();
        const registered = [...models.values()].flatMap((model) => model.versions).find((version) => version.lineage.workflow_id === workflowId) ?? null;
        if (result.runs === undefined) {
          const written = await writeRunReport({
            workflowId,
            registered,
            result,
            runDirectory: directory,
            outDirectory: options.out ? resolve(options.out) : resolve(directory, 'report'),
          });
          if (options.json) printJson(written);
          else {
            process.stdout.write(`${written.html}\n`);
            log(`${written.charts.length} charts beside it in ${resolve(written.html, '..', 'charts')}`);
          }
          return;
        }
        // Several runs: a report per run, each in its run's folder (or --out/<run>).
        const reports = [];
        for (const run of result.runs) {
          const runDirectory = fileURLToPath(run.result.run_uri);
          const written = await writeRunReport({
            workflowId: `${workflowId} · run ${run.name}`,
            registered: null,
            result: run.result,
            runDirectory,
            outDirectory: options.out ? resolve(options.out, run.name) : resolve(runDirectory, 'report'),
          });
          reports.push({ run: run.name, ...written });
        }
        if (options.json) printJson(reports);
        else for (const { run, html, charts } of reports) process.stdout.write(`run ${run}: ${html} (${charts.length} charts)\n`);
      } finally {
        await client.connection.close();
      }
    });
}
