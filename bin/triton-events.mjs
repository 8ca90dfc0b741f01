#!/usr/bin/env node
// The command-line client: `npx triton-events submit <client_id>` / `watch <job_id>`.
// tsx is registered from here (not from the working directory), so it runs from anywhere.
import { register } from 'tsx/esm/api';

register();
const { runCli } = await import('../src/cli/triton-cli.ts');
process.exitCode = await runCli(process.argv.slice(2));
