#!/usr/bin/env node
// Generates the quickstart dataset: short descriptions of people, each paired with the same facts as one line
// of JSON. A pretrained chat model answers such requests loosely (prose, varying keys); after a few dozen LoRA
// steps it answers in exactly this format, which validation loss and the sample generations show.
// Deterministic (seeded), so the committed data.jsonl is reproducible: `node generate-data.mjs > data.jsonl`.
import { seededRandom } from '../seeded-random.mjs';

const firstNames = [
  'Maria',
  'Tomas',
  'Aiko',
  'Lena',
  'Omar',
  'Priya',
  'Jonas',
  'Chloe',
  'Mateo',
  'Ines',
  'Kofi',
  'Sofia',
  'Henrik',
  'Yara',
  'Dmitri',
  'Nora',
  'Ravi',
  'Elsa',
  'Bruno',
  'Mei',
];
const lastNames = [
  'Lopez',
  'Novak',
  'Tanaka',
  'Berg',
  'Haddad',
  'Sharma',
  'Weber',
  'Martin',
  'Rossi',
  'Costa',
  'Mensah',
  'Ivanova',
  'Larsen',
  'Khalil',
  'Petrov',
  'Quinn',
  'Iyer',
  'Lund',
  'Silva',
  'Chen',
];
const jobs = [
  'nurse',
  'carpenter',
  'teacher',
  'pilot',
  'chef',
  'architect',
  'librarian',
  'electrician',
  'pharmacist',
  'baker',
  'geologist',
  'translator',
  'firefighter',
  'dentist',
  'gardener',
];
const cities = ['Lyon', 'Porto', 'Osaka', 'Bergen', 'Tunis', 'Pune', 'Leipzig', 'Quebec', 'Turin', 'Recife', 'Accra', 'Kazan', 'Aarhus', 'Amman', 'Tartu'];
const templates = [
  (p) => `${p.name} is ${p.age} and works as a ${p.job} in ${p.city}.`,
  (p) => `Meet ${p.name}, a ${p.age}-year-old ${p.job} from ${p.city}.`,
  (p) => `${p.city} is home to ${p.name}, who is ${p.age} years old and earns a living as a ${p.job}.`,
  (p) => `At ${p.age}, ${p.name} has settled in ${p.city} and is a ${p.job} there.`,
  (p) => `Our new neighbour ${p.name} (${p.age}) moved to ${p.city} to work as a ${p.job}.`,
  (p) => `${p.name}, ${p.age}, ${p.job}, lives in ${p.city}.`,
];
const instructions = [
  'Extract the person as JSON with keys name, age, job, city.',
  'Return a JSON object (name, age, job, city) describing this person.',
  'Turn this description into JSON with the fields name, age, job and city.',
];

const random = seededRandom(20261128);
const pick = (items) => items[Math.floor(random() * items.length)];
const rows = [];
const seen = new Set();
while (rows.length < 320) {
  const person = { name: `${pick(firstNames)} ${pick(lastNames)}`, age: 19 + Math.floor(random() * 50), job: pick(jobs), city: pick(cities) };
  const description = pick(templates)(person);
  if (seen.has(description)) continue;
  seen.add(description);
  rows.push({ instruction: pick(instructions), input: description, output: JSON.stringify(person) });
}
process.stdout.write(`${rows.map((row) => JSON.stringify(row)).join('\n')}\n`);
