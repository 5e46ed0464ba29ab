// Columns are timestamp(3) without time zone holding UTC (as Prisma writes them): times go in as
// ISO strings (the offset is ignored, the value kept) and come out as epoch numbers, so neither
// side depends on the process's time zone.

/** A time as the statements take it. */
export const iso = (d: Date | null) => (d ? d.toISOString() : null);

/** A column's time in epoch milliseconds, as the statements return it. */
export const epochMs = (column: string) => `EXTRACT(EPOCH FROM ${column}) * 1000`;
