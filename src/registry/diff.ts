import type { ModelVersion } from './schema.ts';

export interface FieldDifference {
  field: string;
  a: unknown;
  b: unknown;
}

export interface ModelDiff {
  name: string;
  a: number;
  b: number;
  /** Lineage and artifact fields that differ. */
  changed: FieldDifference[];
  /** Every metric either side has, with b − a where both are numbers. */
  metrics: { metric: string; a: number | null; b: number | null; delta: number | null }[];
  /** False when the two were measured on different held-out sets: their metrics do not compare. */
  comparable: boolean;
}

/** What differs between two versions of one model: where they came from, and how they measure. */
export function diffVersions(a: ModelVersion, b: ModelVersion): ModelDiff {
  const fields: [string, unknown, unknown][] = [
    ...Object.keys(a.lineage).map((key): [string, unknown, unknown] => [
      `lineage.${key}`,
      a.lineage[key as keyof typeof a.lineage],
      b.lineage[key as keyof typeof b.lineage],
    ]),
    ['adapter_uri', a.adapter_uri, b.adapter_uri],
    ['merged_uri', a.merged_uri, b.merged_uri],
    ['evaluated_on', a.evaluated_on, b.evaluated_on],
    ['exports', a.exports.map((entry) => entry.format).join(','), b.exports.map((entry) => entry.format).join(',')],
  ];
  const metricNames = [...new Set([...Object.keys(a.metrics), ...Object.keys(b.metrics)])].sort();
  return {
    name: a.name,
    a: a.version,
    b: b.version,
    changed: fields.filter(([, left, right]) => left !== right).map(([field, left, right]) => ({ field, a: left, b: right })),
    metrics: metricNames.map((metric) => {
      const left = a.metrics[metric] ?? null;
      const right = b.metrics[metric] ?? null;
      return { metric, a: left, b: right, delta: left !== null && right !== null ? right - left : null };
    }),
    comparable: a.evaluated_on !== null && a.evaluated_on === b.evaluated_on,
  };
}
