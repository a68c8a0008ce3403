/**
 * `firstNonFinite`: where a tensor's values stop being numbers a model can carry (NaN, ±Infinity).
 * Hidden states with such a value are refused on both sides of a step: a server refuses them as
 * input (the runtime's `validateHidden`), a client refuses them as a server's reply
 * (`SessionState.checkReply`), so one broken server is replaced rather than passed on.
 * @module
 */

/** The index of the first NaN or ±Infinity in `data`, or -1 when every value is finite. */
export function firstNonFinite(data: Float32Array): number {
  for (let k = 0; k < data.length; k++) if (!Number.isFinite(data[k])) return k;
  return -1;
}
