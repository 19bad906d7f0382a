// Results go to stdout, everything else (errors, hints, notices) to stderr, so that
// `broadside status 12 --json | jq` and `broadside publish x.md > log` stay clean.

export const print = (line = ''): void => {
  process.stdout.write(`${line}\n`);
};

export const note = (line: string): void => {
  process.stderr.write(`${line}\n`);
};

export const json = (value: unknown): void => {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
};

/** Whether to draw progress bars: only for a person at a terminal. */
export const interactive = (): boolean => process.stdout.isTTY === true;
