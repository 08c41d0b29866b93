/**
 * Every prepared row's line is built by `lineText` and finished by the WebAssembly `LineEncoder`; together they
 * must give exactly what JSON.stringify gives, for any text, because the trainer parses the output. The content
 * keys read from those bytes must treat case and whitespace as dedupe promises, and nothing else.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import type { NormalisedContent } from '../../src/data/formats.ts';
import { keyWordsPerLine, LineEncoder } from '../../src/data/line-encoder.ts';
import { lineHeadBytes, lineText } from '../../src/data/serialise.ts';

const encoder = new LineEncoder();

/** The reference: the content serialised by JSON.stringify with the source spliced in after the kind. */
function reference(content: NormalisedContent, source: string): string {
  const body = JSON.stringify(content);
  const kindEnd = body.indexOf(',') + 1;
  return `${body.slice(0, kindEnd)}${source},${body.slice(kindEnd)}`;
}

/** Encodes rows as one batch; returns each line's text and keys. */
function encode(rows: readonly { content: NormalisedContent; source: string }[]): { line: string; keys: number[] }[] {
  for (const { content, source } of rows) encoder.add(lineText(content, source), lineHeadBytes(content.kind, Buffer.byteLength(source)));
  const { bytes, lengths, keys } = encoder.finish();
  let offset = 0;
  return [...lengths].map((length, index) => {
    const line = Buffer.from(bytes.buffer, bytes.byteOffset + offset, length).toString('utf8');
    offset += length;
    return { line, keys: [...keys.subarray(index * keyWordsPerLine, (index + 1) * keyWordsPerLine)] };
  });
}

const only = (content: NormalisedContent, source = '"source":{"file":"data.jsonl","row":1}') => encode([{ content, source }])[0]!;
const nearKey = (content: NormalisedContent) => only(content).keys.slice(0, 2);

// Every UTF-16 unit, lone surrogates and control characters included, plus newline-heavy text.
const anyText = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.string({ unit: 'grapheme', maxLength: 40 }),
  fc
    .array(fc.constantFrom('a', 'B', ' ', '\n', '\n\n', 'é', 'É', '"', '\\', '\t', '\u000b', '\u001f', '\u2028', '\u00a0', '😀', '\ud800', 'İ'), {
      maxLength: 40,
    })
    .map((parts) => parts.join('')),
);
const content: fc.Arbitrary<NormalisedContent> = fc.oneof(
  fc.record({
    kind: fc.constant('chat' as const),
    messages: fc.array(fc.record({ role: fc.constantFrom('system' as const, 'user' as const, 'assistant' as const, 'tool' as const), content: anyText }), {
      minLength: 1,
      maxLength: 5,
    }),
  }),
  fc.record({ kind: fc.constant('text' as const), text: anyText }),
  fc.record({ kind: fc.constant('completion' as const), prompt: anyText, completion: anyText }),
);
const source = fc
  .tuple(fc.string({ unit: 'grapheme', maxLength: 20 }), fc.nat())
  .map(([file, row]) => `"source":{"file":${JSON.stringify(file)},"row":${row}}`);

/** What dedupe ignores, applied by JavaScript: a string's letters changed in case and its whitespace reshaped. */
function reshape(text: string, upper: boolean, padding: string): string {
  const words = text.split(/\s+/).filter((word) => word !== '');
  const cased = upper ? words.map((word) => word.toUpperCase()) : words;
  return `${padding}${cased.join(padding === '' ? ' ' : ` ${padding}`)}${padding}`;
}

describe('lineText + LineEncoder', () => {
  test('write byte for byte what JSON.stringify gives, many lines to a batch', () => {
    fc.assert(
      fc.property(fc.array(fc.record({ content, source }), { minLength: 1, maxLength: 8 }), (rows) => {
        expect(encode(rows).map(({ line }) => line)).toEqual(rows.map((row) => reference(row.content, row.source)));
      }),
      { numRuns: 1_000 },
    );
  });

  test('the common case: plain text with newlines', () => {
    const row: NormalisedContent = {
      kind: 'chat',
      messages: [
        { role: 'user', content: 'Summarise:\n\nthe text' },
        { role: 'assistant', content: 'Short.\n' },
      ],
    };
    expect(only(row, '"source":{"file":"data.jsonl","row":7}').line).toBe(
      '{"kind":"chat","source":{"file":"data.jsonl","row":7},"messages":[{"role":"user","content":"Summarise:\\n\\nthe text"},{"role":"assistant","content":"Short.\\n"}]}',
    );
  });

  test('lines staged before a discard (a batch that failed) never reach the next batch', () => {
    encoder.add(lineText({ kind: 'text', text: 'from a failed batch' }, '"source":{"file":"a","row":1}'), lineHeadBytes('text', 29));
    encoder.discard();
    expect(encode([{ content: { kind: 'text', text: 'next' }, source: '"source":{"file":"b","row":1}' }]).map(({ line }) => line)).toEqual([
      '{"kind":"text","source":{"file":"b","row":1},"text":"next"}',
    ]);
  });

  test('a line far larger than the encoder memory it starts with', () => {
    const text = `${'word '.repeat(400_000)}\u0001end`;
    expect(only({ kind: 'text', text }).line).toBe(reference({ kind: 'text', text }, '"source":{"file":"data.jsonl","row":1}'));
  });
});

describe('content keys', () => {
  const plainText = fc
    .array(fc.constantFrom('alpha', 'Beta', 'GAMMA', 'déjà', 'ÉTÉ', 'naïve', '数据', 'x1'), { minLength: 1, maxLength: 8 })
    .map((words) => words.join(' '));

  test('case and whitespace change the exact fingerprint, never the near key', () => {
    fc.assert(
      fc.property(plainText, plainText, fc.boolean(), fc.constantFrom('', '  ', '\n', '\t \u00a0', '\r\n'), (prompt, completion, upper, padding) => {
        const original = only({ kind: 'completion', prompt, completion }).keys;
        const reshaped = only({ kind: 'completion', prompt: reshape(prompt, upper, padding), completion: reshape(completion, !upper, padding) }).keys;
        expect(reshaped.slice(0, 2)).toEqual(original.slice(0, 2));
        if (reshape(prompt, upper, padding) !== prompt || reshape(completion, !upper, padding) !== completion) expect(reshaped[2]).not.toBe(original[2]);
      }),
      { numRuns: 500 },
    );
  });

  test('anything else changes the near key: a letter, a field boundary, a role, the kind, the source does not', () => {
    const base = nearKey({ kind: 'completion', prompt: 'ab', completion: 'c' });
    expect(nearKey({ kind: 'completion', prompt: 'ab', completion: 'd' })).not.toEqual(base);
    expect(nearKey({ kind: 'completion', prompt: 'a', completion: 'bc' })).not.toEqual(base);
    expect(nearKey({ kind: 'completion', prompt: 'a b', completion: 'c' })).not.toEqual(base);
    expect(nearKey({ kind: 'completion', prompt: 'ab"', completion: 'c' })).not.toEqual(base);
    expect(nearKey({ kind: 'text', text: 'abc' })).not.toEqual(nearKey({ kind: 'chat', messages: [{ role: 'user', content: 'abc' }] }));
    expect(nearKey({ kind: 'chat', messages: [{ role: 'user', content: 'hi' }] })).not.toEqual(
      nearKey({ kind: 'chat', messages: [{ role: 'assistant', content: 'hi' }] }),
    );
    // A quote inside a string is never taken for the string's end.
    expect(nearKey({ kind: 'completion', prompt: 'x","completion":"y', completion: 'z' })).not.toEqual(
      nearKey({ kind: 'completion', prompt: 'x', completion: 'y","completion":"z' }),
    );
    const row: NormalisedContent = { kind: 'text', text: 'same' };
    expect(only(row, '"source":{"file":"a.jsonl","row":1}').keys).toEqual(only(row, '"source":{"file":"b/ü.jsonl","row":99}').keys);
  });

  test('distinct contents get distinct keys', () => {
    const keys = new Set<string>();
    const rows = Array.from({ length: 20_000 }, (_, index) => ({
      content: { kind: 'text' as const, text: `row ${index}` },
      source: '"source":{"file":"a","row":1}',
    }));
    for (const { keys: words } of encode(rows)) keys.add(words.slice(0, 2).join(':'));
    expect(keys.size).toBe(20_000);
  });
});

describe('line-encoder.wasm', () => {
  test('is the build of its committed source', () => {
    const out = join(mkdtempSync(join(tmpdir(), 'tuneflow-wasm-')), 'line-encoder.wasm');
    const root = fileURLToPath(new URL('../../', import.meta.url));
    execFileSync(
      process.execPath,
      [
        join(root, 'node_modules/assemblyscript/bin/asc.js'),
        'src/data/assembly/line-encoder.ts',
        '--config',
        'src/data/assembly/asconfig.json',
        '--target',
        'release',
        '-o',
        out,
      ],
      { cwd: root },
    );
    expect(readFileSync(out).equals(readFileSync(join(root, 'src/data/assembly/line-encoder.wasm')))).toBe(true);
  }, 60_000);
});
