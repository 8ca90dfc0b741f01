#!/usr/bin/env node
// The command-line client: `npx triton-events submit <client_id>` / `watch <job_id>`.
// In a checkout it runs the TypeScript sources through tsx (registered from here, not from the
// working directory, so it runs from anywhere); the packed package has no sources, only the
// compiled `dist/`, and needs no tsx.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const source = path.join(import.meta.dirname, '../src/cli/triton-cli.ts');
// `keys` manages the services' API keys in their Redis: it runs where the services run (a
// checkout or the image), never from the client package, which ships no Redis client.
if (process.argv[2] === 'keys') {
  const keys = path.join(import.meta.dirname, '../src/cli/keys-command.ts');
  if (!existsSync(keys)) {
    process.stderr.write(
      'triton-events keys: run it where the services run (a checkout of triton-events, or its image): it needs their Redis.\n',
    );
    process.exit(2);
  }
  const { register } = await import('tsx/esm/api');
  register();
  const command = await import(pathToFileURL(keys).href);
  process.exitCode = await command.runKeysCommand(process.argv.slice(3));
} else {
  let cli;
  if (existsSync(source)) {
    const { register } = await import('tsx/esm/api');
    register();
    cli = await import(pathToFileURL(source).href);
  } else {
    cli = await import('../dist/cli/triton-cli.js');
  }
  process.exitCode = await cli.runCli(process.argv.slice(2));
}
