/**
 * The hand-written line writer must produce exactly what JSON.stringify would, for any text: every prepared row
 * goes through it, and the trainer parses its output.
 */
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import type { NormalisedContent } from '../../src/data/formats.ts';
import { maxLineBytes, writeLine } from '../../src/data/serialise.ts';

/** The reference: the content serialised by JSON.stringify with the source spliced in after the kind. */
function reference(content: NormalisedContent, source: string): string {
  const body = JSON.stringify(content);
  const kindEnd = body.indexOf(',') + 1;
  return `${body.slice(0, kindEnd)}${source},${body.slice(kindEnd)}`;
}

function written(content: NormalisedContent, source: string): string {
  const room = maxLineBytes(content, source);
  // Guard bytes after the room catch a write past what maxLineBytes promised.
  const output = Buffer.alloc(room + 16, 0xaa);
  const end = writeLine(output, 0, content, source);
  expect(end).toBeLessThanOrEqual(room);
  expect(output.subarray(room).every((byte) => byte === 0xaa)).toBe(true);
  return output.toString('utf8', 0, end);
}

// Every UTF-16 unit, lone surrogates and control characters included, plus newline-heavy text (the fast path's case).
const anyText = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.string({ unit: 'grapheme', maxLength: 40 }),
  fc.array(fc.constantFrom('a', 'B', ' ', '\n', '\n\n', 'é', '"', '\\', '\t', '\u2028', '😀', '\ud800'), { maxLength: 30 }).map((parts) => parts.join('')),
);
const content: fc.Arbitrary<NormalisedContent> = fc.oneof(
  fc.record({
    kind: fc.constant('chat' as const),
    messages: fc.array(fc.record({ role: fc.constantFrom('system' as const, 'user' as const, 'assistant' as const, 'tool' as const), content: anyText }), { minLength: 1, maxLength: 5 }),
  }),
  fc.record({ kind: fc.constant('text' as const), text: anyText }),
  fc.record({ kind: fc.constant('completion' as const), prompt: anyText, completion: anyText }),
);
const source = fc.tuple(fc.string({ unit: 'grapheme', maxLength: 20 }), fc.nat()).map(([file, row]) => `"source":{"file":${JSON.stringify(file)},"row":${row}}`);

describe('writeLine', () => {
  test('writes byte for byte what JSON.stringify gives, within maxLineBytes', () => {
    fc.assert(
      fc.property(content, source, (row, member) => {
        expect(written(row, member)).toBe(reference(row, member));
      }),
      { numRuns: 2_000 },
    );
  });

  test('the common case: plain text with newlines', () => {
    const row: NormalisedContent = { kind: 'chat', messages: [{ role: 'user', content: 'Summarise:\n\nthe text' }, { role: 'assistant', content: 'Short.\n' }] };
    const member = '"source":{"file":"data.jsonl","row":7}';
    expect(written(row, member)).toBe(
      '{"kind":"chat","source":{"file":"data.jsonl","row":7},"messages":[{"role":"user","content":"Summarise:\\n\\nthe text"},{"role":"assistant","content":"Short.\\n"}]}',
    );
  });
});
