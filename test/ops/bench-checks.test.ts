// The bench's refusal to judge a ratio to a ceiling the generator may have set (issue 15).
import t from 'tap'
import { atLeast, judgedAgainstCeiling } from '../../ops/bench/checks.ts'

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
