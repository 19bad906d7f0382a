// The ports a process is about to listen on, tried before anything starts: a port that is taken
// is reported with the variable that sets it, instead of an EADDRINUSE stack half-way through
// start-up (with the workers already running).
import net from 'node:net';
import type { AppConfig } from '../config/index.js';
import { StartupError } from './startup-error.js';

/** A port this process will listen on, and what sets it. */
export type PlannedPort = { variable: string; port: number; host: string; what: string };

/** The ports an API process listens on, with the variables that set them. */
export function apiPorts(config: Pick<AppConfig, 'port' | 'host' | 'smtpUrl' | 'captureSmtpPort' | 'bounceSmtpPort'>): {
  http: PlannedPort;
  capture?: PlannedPort;
  bounces?: PlannedPort;
} {
  return {
    http: { variable: 'PORT', port: config.port, host: config.host, what: 'the HTTP API' },
    ...(config.smtpUrl ? {} : { capture: { variable: 'CAPTURE_SMTP_PORT', port: config.captureSmtpPort, host: '127.0.0.1', what: 'the capture SMTP server' } }),
    ...(config.bounceSmtpPort === undefined
      ? {}
      : { bounces: { variable: 'BOUNCE_SMTP_PORT', port: config.bounceSmtpPort, host: config.host, what: 'the bounce listener' } }),
  };
}

/** Binds the port for an instant: null when it is free, else the error (EADDRINUSE, EACCES…). */
export function tryPort(port: number, host: string): Promise<NodeJS.ErrnoException | null> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', (err: NodeJS.ErrnoException) => resolve(err));
    server.listen({ port, host, exclusive: true }, () => server.close(() => resolve(null)));
  });
}

/** Why a port cannot be used, and what to try, naming the variable. */
export function portProblem(p: PlannedPort, err: NodeJS.ErrnoException): { problem: string; hint: string } {
  switch (err.code) {
    case 'EADDRINUSE':
      return { problem: 'the port is already in use by another program (another Broadside?)', hint: `Stop it, or set ${p.variable} to a free port.` };
    case 'EACCES':
      return { problem: 'this user may not listen on it (ports below 1024 need privileges)', hint: `Set ${p.variable} to a port above 1023.` };
    case 'EADDRNOTAVAIL':
      return { problem: `${p.host} is not an address of this machine`, hint: 'Set HOST to one of its addresses, or 0.0.0.0 for all.' };
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return { problem: `${p.host} is not a name this machine can resolve`, hint: 'Set HOST to one of its addresses, or 0.0.0.0 for all.' };
    default:
      return { problem: `cannot listen (${err.code ?? err.message})`, hint: `Set ${p.variable} to another port.` };
  }
}

/** The whole line: `PORT=3000 (the HTTP API) on 0.0.0.0: the port is already in use… Stop it, or…` */
function portLine(p: PlannedPort, err: NodeJS.ErrnoException): string {
  const { problem, hint } = portProblem(p, err);
  return `${p.variable}=${p.port} (${p.what}) on ${p.host}: ${problem}. ${hint}`;
}

/** Throws a StartupError naming every planned port that cannot be used (all at once). */
export async function checkPorts(ports: PlannedPort[]): Promise<void> {
  const problems: string[] = [];
  for (const p of ports) {
    if (p.port === 0) continue;
    const err = await tryPort(p.port, p.host);
    if (err) problems.push(portLine(p, err));
  }
  if (problems.length === 1) throw new StartupError([`Cannot start: ${problems[0]}`]);
  if (problems.length > 1) throw new StartupError(['Cannot start: ports cannot be used:', ...problems.map((x) => `  ${x}`)]);
}

/**
 * The start-up failure for an error from listen() (a port taken between the check and the real
 * listen), or undefined for any other error.
 */
export function explainListenError(err: unknown, p: PlannedPort): StartupError | undefined {
  const e = err as NodeJS.ErrnoException;
  if (!e || typeof e.code !== 'string' || e.syscall !== 'listen') return undefined;
  return new StartupError([`Cannot start: ${portLine(p, e)}`]);
}
