#!/usr/bin/env node
// Generates the preference example's data, written for tuneflow (no outside source): the quickstart's task,
// "describe this person as JSON", as pairs. Each pair's chosen answer is the exact JSON line; its rejected answer is
// subtly wrong in one checkable way (the age as a string, a key renamed, a fact swapped, a field missing, prose
// around the JSON). Also writes the SFT rows the pipeline's first run trains on (the chosen answers, other people).
// Deterministic (seeded): `node generate-data.mjs` rewrites pairs.jsonl and sft.jsonl byte for byte.
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

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

// mulberry32: a small seeded generator, so the data is the same on every machine.
function random(seed) {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let value = state;
    value = Math.imul(value ^ (value >>> 15), value | 1);
    value ^= value + Math.imul(value ^ (value >>> 7), value | 61);
    return ((value ^ (value >>> 14)) >>> 0) / 4294967296;
  };
}
const next = random(21);
const pick = (list) => list[Math.floor(next() * list.length)];

const exact = (p) => JSON.stringify({ name: p.name, age: p.age, job: p.job, city: p.city });
/** The subtle mistakes, each a checkable difference from the exact line. */
const mistakes = [
  (p) => JSON.stringify({ name: p.name, age: String(p.age), job: p.job, city: p.city }),
  (p) => JSON.stringify({ name: p.name, age: p.age, occupation: p.job, city: p.city }),
  (p) => JSON.stringify({ name: p.name, age: p.age + 1, job: p.job, city: p.city }),
  (p) => JSON.stringify({ name: p.name, age: p.age, job: p.job }),
  (p) => `Here is the JSON: ${exact(p)}`,
  (p) => JSON.stringify({ name: p.name.split(' ')[0], age: p.age, job: p.job, city: p.city }),
];

const person = () => ({ name: `${pick(firstNames)} ${pick(lastNames)}`, age: 20 + Math.floor(next() * 45), job: pick(jobs), city: pick(cities) });
const prompt = (p) => `${instruction}\n\n${pick(templates)(p)}`;

const pairs = Array.from({ length: 48 }, (_, index) => {
  const p = person();
  return { prompt: prompt(p), chosen: exact(p), rejected: mistakes[index % mistakes.length](p) };
});
const sft = Array.from({ length: 64 }, () => {
  const p = person();
  return { prompt: prompt(p), completion: exact(p) };
});

const here = (name) => fileURLToPath(new URL(name, import.meta.url));
writeFileSync(here('pairs.jsonl'), `${pairs.map((row) => JSON.stringify(row)).join('\n')}\n`);
writeFileSync(here('sft.jsonl'), `${sft.map((row) => JSON.stringify(row)).join('\n')}\n`);
