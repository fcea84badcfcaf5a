import { z } from 'zod';

/**
 * The request and answer schemas of the API, by name. A schema registered here is one component
 * of the OpenAPI document (`#/components/schemas/<id>`); where a route validates its input with
 * the same schema, the document and the validation cannot drift apart.
 */
export const apiSchemas = z.registry<{ id: string; description?: string; example?: unknown }>();

/** Registers `schema` as the component `id` and returns it. */
export function named<T extends z.ZodType>(id: string, schema: T, description?: string): T {
  apiSchemas.add(schema, description === undefined ? { id } : { id, description });
  return schema;
}

/** `{$ref}` of a registered schema; a schema that was never registered is a programming error. */
export function refOf(schema: z.ZodType): { $ref: string } {
  const meta = apiSchemas.get(schema);
  if (!meta) throw new Error('refOf: the schema is not registered in apiSchemas (use named())');
  return { $ref: `#/components/schemas/${meta.id}` };
}

/** Every registered schema as OpenAPI 3.0 Schema Objects, referring to each other by `$ref`. */
export function componentSchemas(): Record<string, Record<string, unknown>> {
  const out = z.toJSONSchema(apiSchemas, {
    target: 'openapi-3.0',
    io: 'input',
    unrepresentable: 'any',
    uri: (id) => `#/components/schemas/${id}`,
  }) as { schemas: Record<string, Record<string, unknown>> };
  for (const s of Object.values(out.schemas)) {
    delete s.$schema;
    delete s.$id;
  }
  return out.schemas;
}
