// The traffic mix of a link shortener: mostly redirects (Zipf-popular links), some link creation, a few stats reads.
import { createLink, redirect, stats, targetUrl, tokenFor } from './api.ts'
import type { Data } from './setup.ts'
import { zipf, type Zipf } from './zipf.ts'

let popularity: Zipf | undefined

export function pickLink(data: Data) {
  popularity ??= zipf(data.links.length, 1.0)
  return data.links[popularity.next()]!
}

/** One iteration of the mix: 90% redirect, 8% create a link, 2% read a link's stats. */
export function mixedTraffic(data: Data): void {
  const r = Math.random()
  if (r < 0.9) redirect(pickLink(data).code)
  else if (r < 0.98) createLink(tokenFor(data.session), targetUrl(Math.floor(Math.random() * 1e9)))
  else stats(tokenFor(data.session), pickLink(data).id)
}
