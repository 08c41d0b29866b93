#!/usr/bin/env node
// Generates the preference example's data, written for tuneflow (no outside source): the quickstart's task,
// "describe this person as JSON", in two parts.
// - sft.jsonl: 64 demonstrations as a team would have them, logged from a legacy system: the facts right, but most
//   answers wrapped in prose ("Here is the JSON: …") and many with the age as a string. SFT on them learns the task
//   and the habits.
// - pairs.jsonl: 48 pairs of other people; `chosen` is the exact JSON line, `rejected` the same answer with one
//   checkable flaw: one of the legacy habits, or a wrong fact (age off by one, a key renamed, a field missing, first
//   name only). DPO on them is what removes the habits the demonstrations taught, so the SFT model (DPO's base and
//   reference) prefers many rejected answers and the tuned one should not.
// Deterministic (seeded): `node generate-data.mjs` rewrites pairs.jsonl and sft.jsonl byte for byte.
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { seededRandom } from '../seeded-random.mjs';

const firstNames = ['Maria', 'Tomas', 'Aiko', 'Lena', 'Omar', 'Priya', 'Jonas', 'Chloe', 'Mateo', 'Ines', 'Kofi', 'Sofia'];
const lastNames = ['Lopez', 'Novak', 'Tanaka', 'Berg', 'Haddad', 'Sharma', 'Weber', 'Martin', 'Rossi', 'Costa', 'Mensah'];
const jobs = ['nurse', 'carpenter', 'teacher', 'pilot', 'chef', 'architect', 'librarian', 'baker', 'dentist', 'gardener'];
const cities = ['Lyon', 'Porto', 'Osaka', 'Bergen', 'Tunis', 'Pune', 'Leipzig', 'Quebec', 'Turin', 'Accra'];
const templates = [
  (p) => `${p.name} is ${p.age} and works as a ${p.job} in ${p.city}.`,
  (p) => `Meet ${p.name}, a ${p.age}-year-old ${p.job} from ${p.city}.`,
  (p) => `At ${p.age}, ${p.name} has settled in ${p.city} and is a ${p.job} there.`,
  (p) => `${p.name}, ${p.age}, ${p.job}, lives in ${p.city}.`,
];
const instruction = 'Extract the person as JSON with keys name, age, job, city.';

const next = seededRandom(21);
const pick = (list) => list[Math.floor(next() * list.length)];

const exact = (p) => JSON.stringify({ name: p.name, age: p.age, job: p.job, city: p.city });
/** The legacy system's habits: the answer wrapped in prose, the age as a string. */
const wrapped = (line) => `Here is the JSON: ${line}`;
const ageAsString = (p) => JSON.stringify({ name: p.name, age: String(p.age), job: p.job, city: p.city });
/** The rejected answers, each a checkable difference from the exact line: half of them a legacy habit. */
const mistakes = [
  (p) => wrapped(exact(p)),
  (p) => ageAsString(p),
  (p) => JSON.stringify({ name: p.name, age: p.age + 1, job: p.job, city: p.city }),
  (p) => wrapped(ageAsString(p)),
  (p) => JSON.stringify({ name: p.name, age: p.age, occupation: p.job, city: p.city }),
  (p) => wrapped(exact(p)),
  (p) => JSON.stringify({ name: p.name, age: p.age, job: p.job }),
  (p) => ageAsString(p),
  (p) => JSON.stringify({ name: p.name.split(' ')[0], age: p.age, job: p.job, city: p.city }),
];
/** A logged legacy answer: wrapped in prose two times in three, the age a string one time in two. */
const legacyAnswer = (p) => {
  const line = next() < 0.5 ? ageAsString(p) : exact(p);
  return next() < 2 / 3 ? wrapped(line) : line;
};

const person = () => ({ name: `${pick(firstNames)} ${pick(lastNames)}`, age: 20 + Math.floor(next() * 45), job: pick(jobs), city: pick(cities) });
const prompt = (p) => `${instruction}\n\n${pick(templates)(p)}`;

const pairs = Array.from({ length: 48 }, (_, index) => {
  const p = person();
  return { prompt: prompt(p), chosen: exact(p), rejected: mistakes[index % mistakes.length](p) };
});
const sft = Array.from({ length: 64 }, () => {
  const p = person();
  return { prompt: prompt(p), completion: legacyAnswer(p) };
});

const here = (name) => fileURLToPath(new URL(name, import.meta.url));
writeFileSync(here('pairs.jsonl'), `${pairs.map((row) => JSON.stringify(row)).join('\n')}\n`);
writeFileSync(here('sft.jsonl'), `${sft.map((row) => JSON.stringify(row)).join('\n')}\n`);
