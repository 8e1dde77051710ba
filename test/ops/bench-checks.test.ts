// The bench's refusal to judge a ratio to a ceiling the generator may have set (issue 15).
import t from 'tap'
import { atLeast, atLeastEveryRound, judgedAgainstCeiling } from '../../ops/bench/checks.ts'

void t.test(
  'when the ceiling is within 10% of the generator limit, then a ratio to it fails as undecided, even one above target',
  async (t) => {
    const met = atLeast('redirect cache on / ceiling', 0.7, 0.6)
    t.equal(met.pass, true)
    const judged = judgedAgainstCeiling(met, 40_000, 37_000)
    t.equal(judged.pass, false, 'not met: the generator may be what the ceiling measured')
    t.match(judged.note, /^undecided: the ceiling is 0\.93 of the generator's limit$/)
    t.equal(judgedAgainstCeiling(met, 40_000, 36_000).pass, false, 'exactly 0.90 is within 10%')
  },
)

void t.test('when the ceiling stays clear of the generator limit, then the ratio is judged on its own', async (t) => {
  t.same(judgedAgainstCeiling(atLeast('x', 0.7, 0.6), 100_000, 40_000), atLeast('x', 0.7, 0.6))
  t.equal(judgedAgainstCeiling(atLeast('x', 0.5, 0.6), 100_000, 40_000).pass, false, 'a miss stays a miss')
  t.equal(judgedAgainstCeiling(atLeast('x', 0.5, 0.6), 100_000, 40_000).note, undefined, 'and is not called undecided')
})

void t.test(
  'when a ratio is judged round by round, then it is met only if every round meets it, and straddling rounds are undecided',
  async (t) => {
    // The ceiling's and the redirect's rounds of one `npm run bench` here (2026-12-06, 00:57 UTC).
    const ceiling = [65023, 42821, 39412, 45898, 36550]
    const redirect = [26454, 28358, 24269, 26015, 21141]
    const judged = atLeastEveryRound('redirect cache on / ceiling', redirect, ceiling, 0.6)
    t.equal(judged.pass, false, 'rounds either side of 0.60 do not meet it')
    t.match(judged.note, /^undecided: its rounds ranged 0\.41-0\.66, either side of 0\.60$/)
    t.equal(judged.value.toFixed(2), '0.58', 'the figure is the median of the rounds')
    const met = atLeastEveryRound('x', [70, 66, 61], [100, 100, 100], 0.6)
    t.same([met.pass, met.note], [true, undefined], 'every round at or above: met')
    const missed = atLeastEveryRound('x', [50, 59, 40], [100, 100, 100], 0.6)
    t.same([missed.pass, missed.note], [false, undefined], 'every round below: missed, and not called undecided')
  },
)
