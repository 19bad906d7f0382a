import { readFileSync } from 'node:fs';

/**
 * Whether this process is in its terminal's foreground process group (Linux: pgrp and tpgid in
 * /proc/self/stat); undefined where that cannot be told.
 */
function inForeground(): boolean | undefined {
  try {
    const stat = readFileSync('/proc/self/stat', 'utf8');
    // After "pid (comm) ": state, ppid, pgrp, session, tty_nr, tpgid, …
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[2]) === Number(fields[5]);
  } catch {
    return undefined;
  }
}

/**
 * Calls `show` each time the person at the terminal presses Enter. Only in the terminal's
 * foreground: a process in the background (`npm start &`) that reads its terminal is stopped by
 * the system (SIGTTIN), which would freeze the service, so stdin is left alone there, and reading
 * pauses whenever the process is continued in the background (`bg`) and resumes in the
 * foreground (`fg`). Returns whether Enter works.
 */
export function onEnter(show: () => void): boolean {
  const stdin = process.stdin;
  if (!stdin.isTTY || inForeground() !== true) return false;
  stdin.setEncoding('utf8');
  stdin.on('data', () => show());
  process.on('SIGCONT', () => {
    if (inForeground()) stdin.resume();
    else stdin.pause();
  });
  return true;
}
