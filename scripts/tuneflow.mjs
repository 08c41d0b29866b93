#!/usr/bin/env node
// The `tuneflow` bin: runs the TypeScript CLI through tsx's loader, in this process (signals reach it directly).
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../src/cli/main.ts');
await main(process.argv);
