import type { NormalisedContent } from './formats.ts';

/**
 * Writes a normalised row as its JSONL line straight into a byte buffer, byte for byte what
 * `JSON.stringify({kind, source, ...rest})` followed by UTF-8 encoding gives, at about half the cost: V8's
 * JSON.stringify examines every character for escapes and builds a new string that then has to be encoded again,
 * while most dataset text needs no escape but its newlines. Text that does (quotes, backslashes, other control
 * characters, surrogates) goes through JSON.stringify. Every row's line is written here, so this is hot code.
 */

/** Anything JSON.stringify would escape except the newline, which the fast path writes itself. */
const needsStringify = /["\\\u0000-\u0009\u000b-\u001f\ud800-\udfff]/;
const quote = 0x22;
const backslash = 0x5c;

/** The most bytes a line can take: UTF-8 needs at most three bytes per UTF-16 unit, an escape at most six. */
export function maxLineBytes(content: NormalisedContent, source: string): number {
  let characters = source.length + 128;
  switch (content.kind) {
    case 'chat':
      for (const message of content.messages) characters += message.role.length + message.content.length + 32;
      break;
    case 'text':
      characters += content.text.length;
      break;
    case 'completion':
      characters += content.prompt.length + content.completion.length;
      break;
    default:
      return content satisfies never;
  }
  return characters * 6;
}

/**
 * Writes `{"kind":"…",<source>,…}` at `offset` and returns the offset after it. `source` is the `"source":{…}`
 * member, placed right after the kind as the trainer's readers expect. The caller guarantees `maxLineBytes` of room.
 * The line's fixed parts are ASCII and short: a byte loop writes them for less than a native write call costs.
 */
export function writeLine(output: Buffer, offset: number, content: NormalisedContent, source: string): number {
  let at = writeAscii(output, offset, '{"kind":"');
  at = writeAscii(output, at, content.kind);
  at = writeAscii(output, at, '",');
  at += output.write(source, at);
  switch (content.kind) {
    case 'chat': {
      at = writeAscii(output, at, ',"messages":[');
      for (let index = 0; index < content.messages.length; index++) {
        const message = content.messages[index]!;
        at = writeAscii(output, at, index === 0 ? '{"role":"' : ',{"role":"');
        at = writeAscii(output, at, message.role);
        at = writeAscii(output, at, '","content":');
        at = writeJsonString(output, at, message.content);
        output[at++] = 0x7d; // }
      }
      output[at++] = 0x5d; // ]
      break;
    }
    case 'text':
      at = writeAscii(output, at, ',"text":');
      at = writeJsonString(output, at, content.text);
      break;
    case 'completion':
      at = writeAscii(output, at, ',"prompt":');
      at = writeJsonString(output, at, content.prompt);
      at = writeAscii(output, at, ',"completion":');
      at = writeJsonString(output, at, content.completion);
      break;
    default:
      return content satisfies never;
  }
  output[at++] = 0x7d; // }
  return at;
}

function writeAscii(output: Buffer, offset: number, text: string): number {
  for (let index = 0; index < text.length; index++) output[offset + index] = text.charCodeAt(index);
  return offset + text.length;
}

function writeJsonString(output: Buffer, offset: number, text: string): number {
  if (needsStringify.test(text)) return offset + output.write(JSON.stringify(text), offset);
  let at = offset;
  output[at++] = quote;
  let start = 0;
  for (let newline = text.indexOf('\n'); newline !== -1; newline = text.indexOf('\n', start)) {
    at += output.write(text.slice(start, newline), at);
    output[at++] = backslash;
    output[at++] = 0x6e; // n
    start = newline + 1;
  }
  at += output.write(start === 0 ? text : text.slice(start), at);
  output[at++] = quote;
  return at;
}
