/**
 * Options over defaults, where an option left `undefined` keeps its default. A plain spread
 * (`{ ...defaults, ...options }`) lets an explicit `undefined` (an optional setting passed through
 * from config, `{ pollMs: config.pollMs }`) replace the default with nothing.
 * @module
 */

/** `defaults` with every option that is not `undefined` laid over it (a new object). */
export function withDefaults<T extends object>(
  defaults: T,
  options: { readonly [K in keyof T]?: T[K] } = {},
): T {
  const out = { ...defaults };
  for (const k of Object.keys(options) as (keyof T)[]) {
    const v = options[k];
    if (v !== undefined) out[k] = v as T[keyof T];
  }
  return out;
}
