#!/usr/bin/env node
// The command-line client: `npx triton-events submit <client_id>` / `watch <job_id>`.
// In a checkout it runs the TypeScript sources through tsx (registered from here, not from the
// working directory, so it runs from anywhere); the packed package has no sources, only the
// compiled `dist/`, and needs no tsx.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const source = path.join(import.meta.dirname, '../src/cli/triton-cli.ts');
let cli;
if (existsSync(source)) {
  const { register } = await import('tsx/esm/api');
  register();
  cli = await import(pathToFileURL(source).href);
} else {
  cli = await import('../dist/cli/triton-cli.js');
}
process.exitCode = await cli.runCli(process.argv.slice(2));
