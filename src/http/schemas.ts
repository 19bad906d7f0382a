import Type from 'typebox';
import { invalidInput } from '../errors.js';

/** The one error shape every route answers with: {"error":{"code","message","details?"}}. */
export const ErrorSchema = Type.Object({ error: Type.Object({ code: Type.String(), message: Type.String(), details: Type.Optional(Type.Unknown()) }) });

export const NullableTimestamp = Type.Union([Type.String({ format: 'date-time' }), Type.Null()]);

export const IdParams = Type.Object({ id: Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER }) });

export const iso = (d: Date | null) => (d ? d.toISOString() : null);

/** A moment to filter a list by: an RFC 3339 date-time, or a date alone, meaning midnight UTC. */
export const DateFilter = (description: string) =>
  Type.Union([Type.String({ format: 'date-time' }), Type.String({ format: 'date' })], { description: `${description}: a date-time, or a date (midnight UTC)` });

/** A DateFilter (or a date-time body field) as a Date; the schema already checked its form. */
export function parseDateParam(value: string | undefined, field: string): Date | undefined {
  if (value === undefined) return undefined;
  const d = new Date(value);
  if (Number.isNaN(d.getTime())) throw invalidInput(`${field} must be a date-time or a date`, { field });
  return d;
}
