#!/usr/bin/env node
// `broadside`: the editor's commands (publish, send, status, import…) over the HTTP API, and the
// operator's (start, api, worker, migrate). `broadside --help` lists them.
import { runCli } from '../cli/main.js';

const code = await runCli(process.argv.slice(2));
// Set, not process.exit(): output written to a pipe is flushed before the process ends.
if (code !== undefined) process.exitCode = code;
