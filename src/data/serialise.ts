import type { ChatMessage, NormalisedContent } from './formats.ts';

/**
 * A normalised row's JSONL line, built as text for `LineEncoder`, which escapes the control characters left raw
 * here: together they give byte for byte what `JSON.stringify({kind, source, ...rest})` gives, at a fraction of
 * the cost. V8's JSON.stringify examines every character for escapes in JavaScript-visible work per string;
 * here a string with no quote, backslash or lone surrogate (nearly all dataset text, whose usual escapes are
 * newlines) is checked by three native scans and concatenated as it is, and the line costs one encoding call.
 * Every row's line is built here, so this is hot code.
 */

/** `{"kind":"` and `",` around the kind. */
const kindFrameLength = 11;

/**
 * The UTF-8 length of a line's head, `{"kind":"…",<source>`: the line's content (what its keys cover) follows.
 * `sourceBytes` is the source member's UTF-8 length.
 */
export function lineHeadBytes(kind: NormalisedContent['kind'], sourceBytes: number): number {
  return kindFrameLength + kind.length + sourceBytes;
}

/**
 * `{"kind":"…",<source>,…}`: `source` is the `"source":{…}` member, placed right after the kind as the trainer's
 * readers expect, and the content's members follow. String values may hold raw control characters.
 */
export function lineText(content: NormalisedContent, source: string): string {
  const head = `{"kind":"${content.kind}",${source}`;
  switch (content.kind) {
    case 'chat':
      return `${head},"messages":[${messagesText(content.messages)}]}`;
    case 'text':
      return `${head},"text":${jsonString(content.text)}}`;
    case 'completion':
      return `${head},"prompt":${jsonString(content.prompt)},"completion":${jsonString(content.completion)}}`;
    case 'preference':
      return `${head},"prompt":[${messagesText(content.prompt)}],"chosen":[${messagesText(content.chosen)}],"rejected":[${messagesText(content.rejected)}]}`;
    default:
      return content satisfies never;
  }
}

/** A message list's members, comma-separated, without the brackets. */
function messagesText(messages: readonly ChatMessage[]): string {
  let text = '';
  for (const message of messages) text += `${text === '' ? '' : ','}{"role":"${message.role}","content":${jsonString(message.content)}}`;
  return text;
}

/** A JSON string literal, except for control characters, which the encoder escapes. */
function jsonString(text: string): string {
  if (text.indexOf('"') === -1 && text.indexOf('\\') === -1 && text.isWellFormed()) return `"${text}"`;
  return JSON.stringify(text);
}
