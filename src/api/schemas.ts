import Type from 'typebox';

/** The one error shape every route answers with: {"error":{"code","message","details?"}}. */
export const ErrorSchema = Type.Object({ error: Type.Object({ code: Type.String(), message: Type.String(), details: Type.Optional(Type.Unknown()) }) });

export const NullableTimestamp = Type.Union([Type.String({ format: 'date-time' }), Type.Null()]);

export const IdParams = Type.Object({ id: Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER }) });

export const iso = (d: Date | null) => (d ? d.toISOString() : null);
