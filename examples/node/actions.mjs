// The demo actions of the polyglot workflow, as plain functions so they can be tested without Kafka.

/** The original example, verbatim. */
export const step1 = (payload) => `Node processed: ${payload}`

/** Any JSON in; the same object (or `{ value: input }` for a non-object) tagged by Node. */
export function enrich (input) {
  const base = typeof input === 'object' && input !== null && !Array.isArray(input) ? input : { value: input }
  return { ...base, enriched_by: 'node', at: new Date().toISOString() }
}

/** A string uppercased; anything else as its JSON text, uppercased. */
export function uppercase (input) {
  return (typeof input === 'string' ? input : JSON.stringify(input)).toUpperCase()
}
