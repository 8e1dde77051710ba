// What every scenario reads from the environment (k6 -e NAME=value, or the process environment).
//   BASE_URL   where nginx answers (default http://127.0.0.1:8080, the native stack)
//   SHORT=1    the few-seconds form the test suite runs; otherwise the full form sized for a 2-core box
//   LINKS      how many links setup() creates (default per scenario)
//   UPSTREAMS  comma-separated replica addresses (127.0.0.1:3001,...) whose share the balancing scenario reports
//   DURATION   the balancing run's length in either form (k6's 30s, 1m): the load CLI's slowed-replica runs
export const BASE_URL = (__ENV.BASE_URL || 'http://127.0.0.1:8080').replace(/\/$/, '')
export const SHORT = __ENV.SHORT === '1' || __ENV.SHORT === 'true'

export function envInt(name: string, fallback: number): number {
  const raw = __ENV[name]
  if (raw === undefined || raw === '') return fallback
  const n = Number(raw)
  if (!Number.isFinite(n)) throw new Error(`${name} must be a number (got ${raw})`)
  return n
}

/** The full value, or the short one when SHORT=1. */
export function pick<T>(full: T, short: T): T {
  return SHORT ? short : full
}
