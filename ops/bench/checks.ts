// The bench's verdicts: each target is one check holding its text, its figure and whether it is met.

export interface Check {
  what: string
  value: number
  target: string
  pass: boolean
  /** Why a check that could not decide fails. */
  note?: string
}

/** The middle value (the mean of the two middle ones for an even count). */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2
}

export const atLeast = (what: string, value: number, min: number, digits = 2): Check => ({
  what,
  value,
  target: `>= ${min.toFixed(digits)}`,
  pass: value >= min,
})

export const atMost = (what: string, value: number, maxMs: number): Check => ({
  what,
  value,
  target: `<= ${maxMs} ms`,
  pass: value <= maxMs,
})

/** The ceiling may reach at most this share of the generator's own limit for a ratio to it to count (issue 15). */
export const CEILING_MAX_SHARE_OF_GENERATOR = 0.9

/**
 * A ratio to the ceiling decides nothing while the ceiling is within 10% of what the generator reaches against a
 * trivial server: the generator, not the server, may be what the ceiling measured. Such a check fails, saying why.
 */
export function judgedAgainstCeiling(c: Check, generatorRps: number, ceilingRps: number): Check {
  const share = ceilingRps / generatorRps
  if (share < CEILING_MAX_SHARE_OF_GENERATOR) return c
  return { ...c, pass: false, note: `undecided: the ceiling is ${share.toFixed(2)} of the generator's limit` }
}

/**
 * A ratio of two rows measured in the same interleaved rounds, judged round by round: met when every round's ratio
 * reaches min, missed when none does, and undecided (a failure saying so) when the rounds straddle it. On this
 * machine one row's rounds ranged over 1.8x within a run (the ceiling: 36,550-65,023 req/s), so a ratio of medians
 * near the target is a coin flip that one run could call either way.
 */
export function atLeastEveryRound(what: string, numerator: number[], denominator: number[], min: number): Check {
  const ratios = numerator.map((n, i) => n / denominator[i]!)
  const [low, high] = [Math.min(...ratios), Math.max(...ratios)]
  const check = atLeast(what, median(ratios), min)
  if (low >= min) return { ...check, pass: true }
  if (high < min) return { ...check, pass: false }
  return {
    ...check,
    pass: false,
    note: `undecided: its rounds ranged ${low.toFixed(2)}-${high.toFixed(2)}, either side of ${min.toFixed(2)}`,
  }
}
