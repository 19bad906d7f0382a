import { AppError } from '../errors.js';

// What can go wrong in the CLI, by exit code: 2 for a wrong call (the person fixes the command
// line), 1 for an operation that failed (the service refused, was not there, or a file was bad).

/** The command line itself is wrong: unknown command, missing argument, bad flag. Exit 2. */
export class UsageError extends Error {
  constructor(
    message: string,
    readonly command?: string,
  ) {
    super(message);
    this.name = 'UsageError';
  }
}

/** The operation failed for a reason already put in words for the person at the terminal. Exit 1. */
export class CliFailure extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
    this.name = 'CliFailure';
  }
}

/**
 * The service answered with an error: its `{"error":{"code","message"}}` (the AppError it
 * raised, rebuilt on this side), or what we made of a foreign answer.
 */
export class ApiError extends AppError {
  override name = 'ApiError';
}

/** Nothing answered at the service's address (refused, unknown host, timed out). */
export class ServiceUnreachable extends Error {
  constructor(
    readonly base: string,
    readonly reason: string,
  ) {
    super(`no Broadside service answers at ${base} (${reason})`);
    this.name = 'ServiceUnreachable';
  }
}

export const isNotFound = (err: unknown): err is ApiError => err instanceof ApiError && err.status === 404;
