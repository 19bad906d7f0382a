import { Ajv, type Options, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';
import type { FastifySchemaCompiler } from 'fastify';

// ajv-formats is CommonJS with a default export; under ESM interop it may arrive wrapped.
const addFormats = ((addFormatsModule as unknown as { default?: typeof addFormatsModule }).default ?? addFormatsModule) as unknown as (ajv: Ajv) => Ajv;

function make(options: Options): Ajv {
  const ajv = new Ajv({ allErrors: false, strict: false, useDefaults: true, ...options });
  addFormats(ajv);
  return ajv;
}

/**
 * Bodies are validated strictly: a number where a string belongs is a 400, not coerced.
 * URL parts (params, query string) are text by nature, so they are coerced to the schema's types.
 */
const compilers = {
  body: make({ coerceTypes: false, removeAdditional: true }),
  params: make({ coerceTypes: true }),
  querystring: make({ coerceTypes: true, removeAdditional: false }),
  headers: make({ coerceTypes: true }),
};

/** Where the first string holding a NUL character sits in `data` (a JSON pointer), if any. */
function nulAt(data: unknown, path: string, depth: number): string | undefined {
  if (typeof data === 'string') return data.includes('\u0000') ? path : undefined;
  if (depth > 4 || data === null || typeof data !== 'object') return undefined;
  for (const [key, value] of Object.entries(data)) {
    const found = nulAt(value, `${path}/${key}`, depth + 1);
    if (found !== undefined) return found;
  }
  return undefined;
}

type ObjectSchema = { type?: unknown; properties?: Record<string, { type?: unknown }>; allOf?: ObjectSchema[] };

/** The properties a URL part's schema types as integers: its own, and those of an allOf (Type.Intersect). */
function integerProperties(schema: ObjectSchema): string[] {
  const own = Object.entries(schema.properties ?? {})
    .filter(([, s]) => s.type === 'integer')
    .map(([name]) => name);
  return [...own, ...(schema.allOf ?? []).flatMap(integerProperties)];
}

const DECIMAL = /^-?[0-9]+$/;

/** The first integer property of `data` not written in decimal digits, as a JSON pointer. */
function notDecimalAt(data: unknown, integers: string[]): string | undefined {
  if (data === null || typeof data !== 'object') return undefined;
  const values = data as Record<string, unknown>;
  const name = integers.find((n) => typeof values[n] === 'string' && !DECIMAL.test(values[n]));
  return name === undefined ? undefined : `/${name}`;
}

/**
 * URL parts are checked beyond the schema, and refused with a 400 like any other invalid value:
 * - An integer is written in decimal digits. Ajv coerces text to a number as JavaScript does, so
 *   `1e3`, `0x10`, ` 7` and `7.0` would pass as 1000, 16, 7 and 7; they are refused before that.
 * - No NUL. Postgres cannot store or compare text holding one ("invalid byte sequence"): a %00
 *   would reach SQL as a filter and fail there as a 500.
 */
function checkingUrlPart(validate: ValidateFunction, integers: string[]): ValidateFunction {
  const refuse = (instancePath: string, keyword: string, message: string) => {
    wrapped.errors = [{ instancePath, schemaPath: '#', keyword, params: {}, message }];
    return false;
  };
  const wrapped = ((data: unknown, ctx?: Parameters<ValidateFunction>[1]) => {
    const notDecimal = notDecimalAt(data, integers);
    if (notDecimal !== undefined) return refuse(notDecimal, 'type', 'must be an integer in decimal digits');
    const ok = ctx ? validate(data, ctx) : validate(data);
    if (!ok) {
      wrapped.errors = validate.errors;
      return false;
    }
    const at = nulAt(data, '', 0);
    if (at !== undefined) return refuse(at, 'nul', 'must not contain NUL characters');
    wrapped.errors = null;
    return true;
  }) as ValidateFunction;
  // Fastify passes the parent context (needed to coerce a root value) only when this is set.
  wrapped.schemaEnv = validate.schemaEnv;
  wrapped.schema = validate.schema;
  return wrapped;
}

export const validatorCompiler: FastifySchemaCompiler<unknown> = ({ schema, httpPart }) => {
  const part = (httpPart ?? 'body') as keyof typeof compilers;
  const ajv = compilers[part] ?? compilers.body;
  const validate = ajv.compile(schema as object);
  const urlPart = part === 'params' || part === 'querystring';
  return (urlPart ? checkingUrlPart(validate, integerProperties(schema as ObjectSchema)) : validate) as ReturnType<FastifySchemaCompiler<unknown>>;
};
