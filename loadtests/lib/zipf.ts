// Zipf-distributed picks: item k (1-based) is chosen with probability proportional to 1/k^s. Link popularity on a
// real shortener looks like this (a few links get most clicks), which is what makes a redirect cache pay off.

export interface Zipf {
  /** A 0-based index into the n items. */
  next(): number
}

export function zipf(n: number, s = 1.0): Zipf {
  if (n < 1) throw new Error('zipf needs at least one item')
  const cdf = new Float64Array(n)
  let sum = 0
  for (let k = 1; k <= n; k++) {
    sum += 1 / Math.pow(k, s)
    cdf[k - 1] = sum
  }
  for (let i = 0; i < n; i++) cdf[i] = cdf[i]! / sum
  return {
    next(): number {
      const u = Math.random()
      let lo = 0
      let hi = n - 1
      while (lo < hi) {
        const mid = (lo + hi) >> 1
        if (cdf[mid]! < u) lo = mid + 1
        else hi = mid
      }
      return lo
    },
  }
}
