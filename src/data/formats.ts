import { match } from 'ts-pattern';
import { z } from 'zod';
import type { DatasetFormat } from '../spec/schema.ts';

/**
 * The dataset row formats users bring, each as a zod schema with its type and guard, and the one normalised row
 * format the Python trainer reads. Unknown extra fields (ids, metadata) are allowed and dropped: they carry no
 * training signal. Strings must contain a non-space character because an empty turn teaches the model nothing.
 */

const nonBlankString = z.string().regex(/\S/, 'must not be empty');

export const ChatRole = ['system', 'user', 'assistant', 'tool'] as const;
export type ChatRole = (typeof ChatRole)[number];

const hasAssistantTurn = (roles: readonly string[], assistantRole: string): boolean => roles.includes(assistantRole);

export const chatRowSchema = z.object({
  messages: z
    .array(z.object({ role: z.enum(ChatRole), content: nonBlankString }))
    .min(1)
    .refine(
      (messages) =>
        hasAssistantTurn(
          messages.map((message) => message.role),
          'assistant',
        ),
      'needs at least one assistant message',
    ),
});
export type ChatRow = z.infer<typeof chatRowSchema>;
export const isChatRow = (value: unknown): value is ChatRow => chatRowSchema.safeParse(value).success;

export const ShareGptSpeaker = ['human', 'gpt', 'system'] as const;
export const shareGptRowSchema = z.object({
  conversations: z
    .array(z.object({ from: z.enum(ShareGptSpeaker), value: nonBlankString }))
    .min(1)
    .refine(
      (turns) =>
        hasAssistantTurn(
          turns.map((turn) => turn.from),
          'gpt',
        ),
      'needs at least one gpt turn',
    ),
});
export type ShareGptRow = z.infer<typeof shareGptRowSchema>;
export const isShareGptRow = (value: unknown): value is ShareGptRow => shareGptRowSchema.safeParse(value).success;

/** Alpaca and instruction/output rows share one shape: `input` is optional, and may be empty or null, in both. */
export const instructionRowSchema = z.object({
  instruction: nonBlankString,
  input: z.string().nullish(),
  output: nonBlankString,
});
export type InstructionRow = z.infer<typeof instructionRowSchema>;
export const isInstructionRow = (value: unknown): value is InstructionRow => instructionRowSchema.safeParse(value).success;

const chatMessageSchema = z.object({ role: z.enum(ChatRole), content: nonBlankString });
type ChatMessageInput = z.infer<typeof chatMessageSchema>;

/**
 * Raised by the preference schemas' checks; the report's row error kind travels in the issue's params (see
 * validate.ts' describeIssue), so a row fails with the kind its problem is, not a generic one.
 */
export const preferenceIssue = (message: string, path: PropertyKey[], kind: 'identical_responses' | 'no_shared_prompt' | 'no_assistant_message') => ({
  code: 'custom' as const,
  message,
  path,
  params: { kind },
});

/** `{prompt, chosen, rejected}` as text, optional `system`: the usual preference row (Anthropic HH-style, UltraFeedback binarised). */
export const preferenceRowSchema = z
  .object({
    system: nonBlankString.optional(),
    prompt: nonBlankString,
    chosen: nonBlankString,
    rejected: nonBlankString,
  })
  .check((context) => {
    if (context.value.chosen === context.value.rejected) {
      context.issues.push({
        ...preferenceIssue('chosen and rejected are the same response: the pair teaches nothing', ['rejected'], 'identical_responses'),
        input: context.value,
      });
    }
  });
export type PreferenceRow = z.infer<typeof preferenceRowSchema>;

const sameMessage = (left: ChatMessageInput, right: ChatMessageInput) => left.role === right.role && left.content === right.content;

/** How many leading messages two conversations share. */
function sharedPrefixLength(left: readonly ChatMessageInput[], right: readonly ChatMessageInput[]): number {
  let shared = 0;
  while (shared < left.length && shared < right.length && sameMessage(left[shared]!, right[shared]!)) shared++;
  return shared;
}

/**
 * Message lists: `{chosen, rejected}`, whole conversations whose shared leading messages are the prompt, or TRL's
 * conversational `{prompt, chosen, rejected}`, where chosen and rejected are the responses alone. Either way what
 * follows the prompt must be assistant turns, and the two responses must differ.
 */
export const chatPreferenceRowSchema = z
  .object({
    prompt: z.array(chatMessageSchema).min(1).optional(),
    chosen: z.array(chatMessageSchema).min(1),
    rejected: z.array(chatMessageSchema).min(1),
  })
  .check((context) => {
    const { prompt, chosen, rejected } = context.value;
    const promptLength = prompt === undefined ? sharedPrefixLength(chosen, rejected) : 0;
    const fail = (message: string, path: PropertyKey[], kind: Parameters<typeof preferenceIssue>[2]) =>
      context.issues.push({ ...preferenceIssue(message, path, kind), input: context.value });
    if (prompt === undefined && promptLength === 0) {
      fail('chosen and rejected share no leading message: the prompt they answer must open both (or give prompt)', ['chosen', 0], 'no_shared_prompt');
      return;
    }
    for (const side of ['chosen', 'rejected'] as const) {
      const response = context.value[side].slice(promptLength);
      if (response.length === 0) {
        fail(`${side} ends where the prompt ends: it needs an assistant response`, [side], 'no_assistant_message');
        return;
      }
      const notAssistant = response.findIndex((message) => message.role !== 'assistant');
      if (notAssistant !== -1) {
        fail(
          `${side}'s response must be assistant turns only, found ${response[notAssistant]!.role}`,
          [side, promptLength + notAssistant, 'role'],
          'no_assistant_message',
        );
        return;
      }
    }
    if (chosen.length - promptLength === rejected.length - promptLength && sharedPrefixLength(chosen, rejected) === chosen.length) {
      fail('chosen and rejected are the same response: the pair teaches nothing', ['rejected'], 'identical_responses');
    }
  });
export type ChatPreferenceRow = z.infer<typeof chatPreferenceRowSchema>;

export const textRowSchema = z.object({ text: nonBlankString });
export type TextRow = z.infer<typeof textRowSchema>;
export const isTextRow = (value: unknown): value is TextRow => textRowSchema.safeParse(value).success;

export const completionRowSchema = z.object({ prompt: nonBlankString, completion: nonBlankString });
export type CompletionRow = z.infer<typeof completionRowSchema>;
export const isCompletionRow = (value: unknown): value is CompletionRow => completionRowSchema.safeParse(value).success;

/**
 * A row's format family. Alpaca and instruction rows are one family (same fields), so a file that mixes rows
 * with and without `input` is not "mixed"; the report calls the family alpaca when any row has an `input`.
 */
export const RowFamily = {
  Chat: 'chat',
  ShareGpt: 'sharegpt',
  Instruction: 'instruction',
  Text: 'text',
  Completion: 'completion',
  Preference: 'preference',
  ChatPreference: 'chat_preference',
} as const;
export type RowFamily = (typeof RowFamily)[keyof typeof RowFamily];
/** Stable order so families travel between threads as small integers. */
export const rowFamilies: readonly RowFamily[] = Object.values(RowFamily);

export type ConcreteFormat = Exclude<DatasetFormat, 'auto'>;

export function familyOfFormat(format: ConcreteFormat): RowFamily {
  return match(format)
    .with('chat', () => RowFamily.Chat)
    .with('sharegpt', () => RowFamily.ShareGpt)
    .with('alpaca', 'instruction', () => RowFamily.Instruction)
    .with('text', () => RowFamily.Text)
    .with('completion', () => RowFamily.Completion)
    .with('preference', () => RowFamily.Preference)
    .with('chat_preference', () => RowFamily.ChatPreference)
    .exhaustive();
}

/**
 * Which family a row claims by its keys, in a fixed priority (a chat row may also carry a `text` summary).
 * Undefined when the row names no known field.
 */
export function familyOfRowKeys(row: Record<string, unknown>): RowFamily | undefined {
  // Preference rows carry a prompt too: their chosen/rejected decide first, message lists or text.
  if ('chosen' in row || 'rejected' in row) return Array.isArray(row.chosen ?? row.rejected) ? RowFamily.ChatPreference : RowFamily.Preference;
  if ('messages' in row) return RowFamily.Chat;
  if ('conversations' in row) return RowFamily.ShareGpt;
  if ('instruction' in row) return RowFamily.Instruction;
  if ('prompt' in row || 'completion' in row) return RowFamily.Completion;
  if ('text' in row) return RowFamily.Text;
  return undefined;
}

export const familyFields: Record<RowFamily, string> = {
  chat: 'messages',
  sharegpt: 'conversations',
  instruction: 'instruction, output',
  text: 'text',
  completion: 'prompt, completion',
  preference: 'prompt, chosen, rejected',
  chat_preference: 'chosen, rejected (message lists)',
};

export type ChatMessage = { role: ChatRole; content: string };

/** The trainer's row, without its source: what dedupe and the split look at. */
export type NormalisedContent =
  | { kind: 'chat'; messages: ChatMessage[] }
  | { kind: 'text'; text: string }
  | { kind: 'completion'; prompt: string; completion: string }
  /** A preference pair: the prompt's turns, then each response's assistant turns (docs/datasets.md). */
  | { kind: 'preference'; prompt: ChatMessage[]; chosen: ChatMessage[]; rejected: ChatMessage[] };

export type RowSource = { file: string; row: number };
export type NormalisedRow = NormalisedContent & { source: RowSource };

const shareGptRole: Record<(typeof ShareGptSpeaker)[number], ChatRole> = { human: 'user', gpt: 'assistant', system: 'system' };

export type ParsedRow =
  | { family: 'chat'; row: ChatRow }
  | { family: 'sharegpt'; row: ShareGptRow }
  | { family: 'instruction'; row: InstructionRow }
  | { family: 'text'; row: TextRow }
  | { family: 'completion'; row: CompletionRow }
  | { family: 'preference'; row: PreferenceRow }
  | { family: 'chat_preference'; row: ChatPreferenceRow };

export const familySchemas = {
  chat: chatRowSchema,
  sharegpt: shareGptRowSchema,
  instruction: instructionRowSchema,
  text: textRowSchema,
  completion: completionRowSchema,
  preference: preferenceRowSchema,
  chat_preference: chatPreferenceRowSchema,
} as const satisfies Record<RowFamily, z.ZodType>;

/**
 * V8 reads a concatenated ("cons") string character by character several times slower than a flat one, and every
 * row's text is read that way (content keys, escaping); converting the string to a number flattens it in place
 * (the number itself is discarded).
 */
function flattened(text: string): string {
  Number(text);
  return text;
}

/**
 * Maps every family onto the trainer's three kinds; extra message fields are dropped because the trainer ignores
 * them. A switch, not ts-pattern, because this runs once per row and a match allocates.
 */
export function normaliseRow(parsed: ParsedRow): NormalisedContent {
  switch (parsed.family) {
    case 'chat':
      return { kind: 'chat', messages: parsed.row.messages.map((message) => ({ role: message.role, content: message.content })) };
    case 'sharegpt':
      return { kind: 'chat', messages: parsed.row.conversations.map((turn) => ({ role: shareGptRole[turn.from], content: turn.value })) };
    case 'instruction': {
      const { instruction, input, output } = parsed.row;
      const user = input && /\S/.test(input) ? flattened(`${instruction}\n\n${input}`) : instruction;
      return {
        kind: 'chat',
        messages: [
          { role: 'user', content: user },
          { role: 'assistant', content: output },
        ],
      };
    }
    case 'text':
      return { kind: 'text', text: parsed.row.text };
    case 'completion':
      return { kind: 'completion', prompt: parsed.row.prompt, completion: parsed.row.completion };
    case 'preference': {
      const { system, prompt, chosen, rejected } = parsed.row;
      return {
        kind: 'preference',
        prompt: [...(system === undefined ? [] : [{ role: 'system' as const, content: system }]), { role: 'user', content: prompt }],
        chosen: [{ role: 'assistant', content: chosen }],
        rejected: [{ role: 'assistant', content: rejected }],
      };
    }
    case 'chat_preference': {
      const { prompt, chosen, rejected } = parsed.row;
      const promptLength = prompt === undefined ? sharedPrefixLength(chosen, rejected) : 0;
      const messages = (turns: readonly ChatMessageInput[]) => turns.map((message) => ({ role: message.role, content: message.content }));
      return {
        kind: 'preference',
        prompt: messages(prompt ?? chosen.slice(0, promptLength)),
        chosen: messages(chosen.slice(promptLength)),
        rejected: messages(rejected.slice(promptLength)),
      };
    }
    default:
      return parsed satisfies never;
  }
}
