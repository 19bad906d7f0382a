import { Ajv, type ErrorObject, type Options, type ValidateFunction } from 'ajv';
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

/**
 * Postgres cannot store or compare text holding NUL ("invalid byte sequence"): a %00 in a URL
 * would reach SQL as a filter and fail there as a 500. URL parts are checked after the schema
 * and refused with a 400 like any other invalid value.
 */
function refusingNul(validate: ValidateFunction): ValidateFunction {
  const wrapped = ((data: unknown, ctx?: Parameters<ValidateFunction>[1]) => {
    const ok = ctx ? validate(data, ctx) : validate(data);
    if (!ok) {
      wrapped.errors = validate.errors;
      return false;
    }
    const at = nulAt(data, '', 0);
    if (at !== undefined) {
      const error: ErrorObject = { instancePath: at, schemaPath: '#', keyword: 'nul', params: {}, message: 'must not contain NUL characters' };
      wrapped.errors = [error];
      return false;
    }
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
  return (part === 'params' || part === 'querystring' ? refusingNul(validate) : validate) as ReturnType<FastifySchemaCompiler<unknown>>;
};
