/**
 * Evaluation suites: what the evaluate stage scores besides loss, declared in the spec (`evaluate.suites`). Every
 * suite scores the same generations: the greedy answers of base, candidate (and, in retraining, champion) to the
 * reference prompts — the validation rows' prompts with their first assistant turn as the reference, or the rows of
 * `evaluate.references_path` ({prompt, reference} per line). The scoring itself runs in Python
 * (tuneflow_activities/suites.py); this file is the shape of the declarations and of the metrics each kind reports.
 */
import { match } from 'ts-pattern';
import { z } from 'zod';

export const SuiteKind = {
  /** The answer equals the reference (both trimmed). */
  ExactMatch: 'exact_match',
  /** The answer contains the reference. */
  Contains: 'contains',
  /** The answer parses as JSON, validates against a JSON Schema, and its fields equal the reference's. */
  Json: 'json',
  /** How varied the answers are: a model that answers everything the same way fails it. */
  Diversity: 'diversity',
  /** A judge model compares the candidate's answers with the opponent's (the champion in retraining, else the base), both orders. */
  Judge: 'judge',
} as const;
export type SuiteKind = (typeof SuiteKind)[keyof typeof SuiteKind];

/** The metrics each kind reports: the names gates may compare (`<suite>.<metric>`). All are fractions in [0, 1]. */
export const suiteMetrics = {
  [SuiteKind.ExactMatch]: ['exact_match'],
  [SuiteKind.Contains]: ['contains'],
  [SuiteKind.Json]: ['parse_rate', 'schema_valid_rate', 'field_accuracy'],
  [SuiteKind.Diversity]: ['distinct_ratio', 'most_common_share'],
  /** win_rate counts a tie as half a win; the bounds are its 95% Wilson interval over the judged comparisons. */
  [SuiteKind.Judge]: ['win_rate', 'win_rate_lower', 'win_rate_upper'],
} as const satisfies Record<SuiteKind, readonly string[]>;

/** Gate metric names are `<suite name>.<metric>`, so a name is one identifier. */
const suiteName = z
  .string()
  .regex(/^[a-z][a-z0-9_]*$/, 'a suite name is lowercase letters, digits and underscores, starting with a letter')
  .optional()
  .describe('How gates and reports name this suite; defaults to its kind.');

const caseSensitive = z.boolean().default(true);

export const exactMatchSuiteSchema = z.strictObject({ kind: z.literal(SuiteKind.ExactMatch), name: suiteName, case_sensitive: caseSensitive });
export const containsSuiteSchema = z.strictObject({ kind: z.literal(SuiteKind.Contains), name: suiteName, case_sensitive: caseSensitive });

export const jsonSuiteSchema = z
  .strictObject({
    kind: z.literal(SuiteKind.Json),
    name: suiteName,
    /** A JSON Schema (draft 2020-12) each answer must validate against... */
    schema: z.record(z.string(), z.unknown()).optional(),
    /** ...or a file holding one (relative to the spec file). Without either, schema_valid_rate equals parse_rate. */
    schema_path: z.string().min(1).optional(),
    /** The top-level fields compared with the reference's; every field of each reference object when absent. */
    fields: z.array(z.string().min(1)).min(1).optional(),
  })
  .refine((suite) => suite.schema === undefined || suite.schema_path === undefined, { message: 'give at most one of schema, schema_path' });

export const diversitySuiteSchema = z.strictObject({ kind: z.literal(SuiteKind.Diversity), name: suiteName });

/** An OpenAI-compatible chat completions server: `<url>/chat/completions` (url as in OpenAI clients' base_url). */
export const judgeEndpointSchema = z.strictObject({
  url: z.string().regex(/^https?:\/\//, 'an http:// or https:// URL'),
  model: z.string().min(1),
  /** The environment variable holding the API key (sent as a Bearer token); no key when absent. */
  api_key_env: z.string().min(1).optional(),
});

export const judgeSuiteSchema = z
  .strictObject({
    kind: z.literal(SuiteKind.Judge),
    name: suiteName,
    /** A local judge: a builtin model name, a Hugging Face model directory or a .gguf file (relative to the spec)... */
    model: z.string().min(1).optional(),
    /** ...or a judge behind an OpenAI-compatible endpoint. */
    endpoint: judgeEndpointSchema.optional(),
    /** What the judge is told makes an answer better. */
    criteria: z.string().min(1).default('Which answer follows the instruction more accurately and helpfully?'),
  })
  .refine((suite) => (suite.model === undefined) !== (suite.endpoint === undefined), { message: 'give exactly one of model, endpoint' });

export const suiteSpecSchema = z.discriminatedUnion('kind', [
  exactMatchSuiteSchema,
  containsSuiteSchema,
  jsonSuiteSchema,
  diversitySuiteSchema,
  judgeSuiteSchema,
]);
export type SuiteSpec = z.output<typeof suiteSpecSchema>;

export const suiteNameOf = (suite: { kind: SuiteKind; name?: string | undefined }): string => suite.name ?? suite.kind;

/**
 * What a judge compared the candidate with: its base model (a run, a first model), or the champion version it would
 * replace (retraining: the champion's evaluation judges the challenger's answers against the champion's).
 */
export const JudgeOpponentKind = { Base: 'base', Champion: 'champion' } as const;
export type JudgeOpponentKind = (typeof JudgeOpponentKind)[keyof typeof JudgeOpponentKind];
export const judgeOpponentSchema = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal(JudgeOpponentKind.Base) }),
  z.strictObject({ kind: z.literal(JudgeOpponentKind.Champion), version: z.number().int().positive() }),
]);
export type JudgeOpponent = z.infer<typeof judgeOpponentSchema>;

/** `the base` or `champion v3`: how verdicts, reports and the CLI name a judge's opponent. */
export const describeOpponent = (opponent: JudgeOpponent): string =>
  match(opponent)
    .with({ kind: JudgeOpponentKind.Base }, () => 'the base')
    .with({ kind: JudgeOpponentKind.Champion }, ({ version }) => `champion v${version}`)
    .exhaustive();

/**
 * An adapter's answer to one reference row. `row` is the row's place in its source (the validation split's example,
 * the references file's line), the same for every model scoring that source whatever its tokenizer, so two models'
 * answers pair up by it.
 */
export const referenceAnswerSchema = z.object({ row: z.number().int().nonnegative(), answer: z.string() });
export type ReferenceAnswer = z.infer<typeof referenceAnswerSchema>;

/** One suite's scores, as the evaluate activity returns them for one model (base, candidate or champion). */
export const suiteMetricsSchema = z.record(z.string(), z.number().min(0).max(1).nullable());
export type SuiteMetrics = z.infer<typeof suiteMetricsSchema>;

export const suiteResultSchema = z.object({
  name: z.string().min(1),
  kind: z.enum(SuiteKind),
  /** The base model's scores; null for a judge (it scores a pair, not one model). */
  base: suiteMetricsSchema.nullable(),
  /**
   * The adapter's scores: the candidate's in a run, the champion's when the retrain workflow scores the champion. A
   * judge's are the candidate's against `opponent`: in a champion's evaluation the candidate is the challenger whose
   * answers the request carried, not the adapter.
   */
  tuned: suiteMetricsSchema,
  /** A judge's only: what the candidate was compared with (absent in records written before it was: the base then). */
  opponent: judgeOpponentSchema.optional(),
});
export type SuiteResult = z.infer<typeof suiteResultSchema>;

/** What the evaluate activity returns for the spec's suites: every suite scored on the same answers. */
export const suiteEvaluationSchema = z.object({
  /** Reference rows answered (evaluate.suite_rows at most). */
  rows: z.number().int().nonnegative(),
  /** Where the references came from: 'validation' (the run's held-out rows) or the references file. */
  references: z.string().min(1),
  results: z.array(suiteResultSchema),
  /** The first few rows with both answers, for the report. */
  examples: z.array(z.object({ prompt: z.string(), reference: z.string(), base: z.string(), tuned: z.string() })),
  /** The adapter's answer to every reference row, when a judge suite is declared: what retraining judges against the champion's. */
  answers: z.array(referenceAnswerSchema).optional(),
});
export type SuiteEvaluation = z.infer<typeof suiteEvaluationSchema>;

/** A judge result's opponent: the one it names, else the base (what every judge compared with before opponents were recorded). */
export const judgeOpponentOf = (result: SuiteResult): JudgeOpponent => result.opponent ?? { kind: JudgeOpponentKind.Base };
