/**
 * A tiny closed-object validator whose checks carry their TypeScript types, so one declaration
 * gives both the type (`Infer`) and the runtime check. Only `protocol.ts` uses it.
 *
 * @module
 */

/** A runtime check that is also a type guard for `T`. */
export type Check<T> = (v: unknown) => v is T;

/** A field that may be absent (never `undefined` on the wire: JSON has no undefined). */
export interface Optional<T> {
  readonly optional: Check<T>;
}

/** One field of a declaration: required (a check) or optional. */
export type Field = Check<unknown> | Optional<unknown>;

/** The fields of a closed object: anything not named here is rejected. */
export type Fields = Readonly<Record<string, Field>>;

/** The type a field admits. */
export type TypeOf<F> = F extends Optional<infer T> ? T : F extends Check<infer T> ? T : never;

/** Flattens an intersection so editors show one object type. */
export type Simplify<T> = { [K in keyof T]: T[K] } & unknown;

/** The object type described by `S` (optional fields become `?:`). */
export type Infer<S extends Fields> = Simplify<
  & { -readonly [K in keyof S as S[K] extends Optional<unknown> ? never : K]: TypeOf<S[K]> }
  & { -readonly [K in keyof S as S[K] extends Optional<unknown> ? K : never]?: TypeOf<S[K]> }
>;

/** Longest string any field accepts unless it says otherwise. */
export const MAX_STRING = 16_384;

/** A string of at most `max` characters. */
export function str(max = MAX_STRING): Check<string> {
  return (v): v is string => typeof v === "string" && v.length <= max;
}

/** A non-negative safe integer. */
export const uint: Check<number> = (v): v is number =>
  Number.isSafeInteger(v) && (v as number) >= 0;

/** A safe integer, negative allowed (times before 1970). */
export const int: Check<number> = (v): v is number => Number.isSafeInteger(v);

/** A finite number. */
export const num: Check<number> = (v): v is number => typeof v === "number" && Number.isFinite(v);

/** An unsigned 32-bit integer (a CRC32). */
export const uint32: Check<number> = (v): v is number => uint(v) && v <= 0xffff_ffff;

/** A TCP port, 1–65535. */
export const port: Check<number> = (v): v is number => uint(v) && v > 0 && v < 65536;

/** A boolean. */
export const bool: Check<boolean> = (v): v is boolean => typeof v === "boolean";

/** One of the given strings. */
export function oneOf<const L extends readonly string[]>(...values: L): Check<L[number]> {
  const set: ReadonlySet<unknown> = new Set(values);
  return (v): v is L[number] => set.has(v);
}

/** `check`, or null. */
export function nullable<T>(check: Check<T>): Check<T | null> {
  return (v): v is T | null => v === null || check(v);
}

/** Marks a field optional. */
export function optional<T>(check: Check<T>): Optional<T> {
  return { optional: check };
}

/** An array of at most `max` items, each passing `check`. */
export function arrayOf<T>(check: Check<T>, max: number): Check<T[]> {
  return (v): v is T[] => Array.isArray(v) && v.length <= max && v.every(check);
}

/** A plain object (not null, not an array). */
export function isObject(v: unknown): v is { readonly [key: string]: unknown } {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/**
 * The first field of `v` that `fields` rejects (missing, wrong, or not declared), or null when
 * `v` fits. `skip` names keys checked elsewhere (the frame's `type`).
 */
export function badField(
  fields: Fields,
  v: { readonly [key: string]: unknown },
  skip = "",
): string | null {
  for (const [key, field] of Object.entries(fields)) {
    const value = v[key];
    const ok = typeof field === "function"
      ? field(value)
      : value === undefined || field.optional(value);
    if (!ok) return key;
  }
  for (const key of Object.keys(v)) {
    if (key !== skip && !Object.hasOwn(fields, key)) return key;
  }
  return null;
}

/** A closed object with exactly `fields`. */
export function object<const S extends Fields>(fields: S): Check<Infer<S>> {
  return (v): v is Infer<S> => isObject(v) && badField(fields, v) === null;
}

/** The type a check guards (distributes over a union of checks). */
export type Guarded<C> = C extends Check<infer U> ? U : never;

/** Any of the checks. */
export function anyOf<const T extends readonly Check<unknown>[]>(
  ...checks: T
): Check<Guarded<T[number]>> {
  return (v): v is Guarded<T[number]> => checks.some((c) => c(v));
}
