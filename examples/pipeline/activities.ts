/**
 * Our own activity, run by our worker: a domain check tuneflow knows nothing about. The held-out rows ask for a
 * person's facts as JSON; a good adapter answers with JSON holding exactly those facts.
 */
import { readFile } from 'node:fs/promises';
import type { EvaluationResult } from 'tuneflow/workflow';

export interface JudgeAnswersRequest {
  /** Our held-out JSONL file (instruction, input, output per row), as the spec names it. */
  held_out_path: string;
  evaluation: EvaluationResult;
}

export interface Judgement {
  /** Held-out validation loss, base minus tuned: positive when the adapter helps. */
  loss_improvement: number | null;
  /** Sample answers judged: those whose prompt is a held-out row. */
  answers: number;
  /** Answers that parse as a JSON object. */
  json_answers: number;
  /** Answers whose JSON equals the row's expected output. */
  exact_answers: number;
}

interface HeldOutRow {
  instruction: string;
  input: string;
  output: string;
}

/** The prompt a held-out row becomes in the spec's sample prompts (see client.ts). */
export const promptOf = (row: HeldOutRow) => `${row.instruction}\n\n${row.input}`;

/** The answer as a JSON object with its keys sorted (the order of facts does not matter), or null. */
function parsedObject(text: string): string | null {
  try {
    const value: unknown = JSON.parse(text.trim());
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return null;
    return JSON.stringify(Object.fromEntries(Object.entries(value).sort(([first], [second]) => first.localeCompare(second))));
  } catch {
    return null;
  }
}

export async function judgeAnswers(request: JudgeAnswersRequest): Promise<Judgement> {
  const rows = (await readFile(request.held_out_path, 'utf8'))
    .split('\n')
    .filter((line) => line.trim())
    .map((line) => JSON.parse(line) as HeldOutRow);
  const expected = new Map(rows.map((row) => [promptOf(row), row.output]));
  const judged = request.evaluation.samples.flatMap((sample) => {
    const output = expected.get(sample.prompt);
    return output === undefined ? [] : [{ answer: parsedObject(sample.tuned), expected: parsedObject(output) }];
  });
  const { base_val_loss: base, tuned_val_loss: tuned } = request.evaluation;
  return {
    loss_improvement: base === null || tuned === null ? null : base - tuned,
    answers: judged.length,
    json_answers: judged.filter(({ answer }) => answer !== null).length,
    exact_answers: judged.filter(({ answer, expected: wanted }) => answer !== null && answer === wanted).length,
  };
}
