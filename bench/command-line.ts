import { parseArgs, type ParseArgsConfig } from 'node:util';
import { z } from 'zod';

type Options = NonNullable<ParseArgsConfig['options']>;

/**
 * A bench command's options: node's parseArgs reads them, a zod schema checks their values.
 * `--help` prints the usage. An unknown option or a bad value prints what is wrong and the usage
 * and exits with status 2, before anything has started (a misspelt target or scenario would
 * otherwise start servers, or run as something else).
 */
export function commandLine<S extends z.ZodType>(usage: string, options: Options, schema: S, args = process.argv.slice(2)): z.output<S> {
  const fail = (message: string): never => {
    console.error(`${message}\n\n${usage}`);
    process.exit(2);
  };
  let values: Record<string, unknown>;
  try {
    values = parseArgs({ args, options: { ...options, help: { type: 'boolean', short: 'h' } }, allowNegative: true }).values;
  } catch (err) {
    return fail((err as Error).message);
  }
  if (values.help) {
    console.log(usage);
    process.exit(0);
  }
  const parsed = schema.safeParse(values);
  if (!parsed.success) return fail(parsed.error.issues.map((issue) => `--${String(issue.path[0])}: ${issue.message}`).join('\n'));
  return parsed.data;
}

/** A comma-separated list of names from `allowed`. */
export const listOf = (allowed: readonly [string, ...string[]]) =>
  z
    .string()
    .transform((s) => s.split(',').map((name) => name.trim()))
    .pipe(z.array(z.enum(allowed)).min(1));
