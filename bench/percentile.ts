/** The `q` quantile of `xs` (sorts it in place); 0 for none. */
export function percentile(xs: number[], q: number) {
  xs.sort((a, b) => a - b);
  return xs[Math.min(xs.length - 1, Math.floor(xs.length * q))] ?? 0;
}
