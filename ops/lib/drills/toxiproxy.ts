// toxiproxy's HTTP API (https://github.com/Shopify/toxiproxy#http-api): the same on every target, because the app
// reaches Postgres and Redis through the proxies `postgres`, `redis` (queues) and `redis-cache` in compose, k8s and
// the native stack alike.

export interface Toxic {
  name: string
  type: 'latency' | 'timeout' | 'bandwidth' | 'slow_close' | 'reset_peer' | 'limit_data'
  stream?: 'upstream' | 'downstream'
  toxicity?: number
  attributes: Record<string, number>
}

export class Toxiproxy {
  readonly url: string

  constructor(url: string) {
    this.url = url.replace(/\/$/, '')
  }

  private async call(method: string, path: string, body?: unknown): Promise<unknown> {
    const res = await fetch(`${this.url}${path}`, {
      method,
      headers: { 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(5000),
    })
    const text = await res.text()
    if (!res.ok) throw new Error(`toxiproxy ${method} ${path} answered ${res.status}: ${text.slice(0, 200)}`)
    return text ? (JSON.parse(text) as unknown) : undefined
  }

  async addToxic(proxy: string, toxic: Toxic): Promise<void> {
    await this.call('POST', `/proxies/${proxy}/toxics`, { stream: 'downstream', toxicity: 1, ...toxic })
  }

  async removeToxic(proxy: string, name: string): Promise<void> {
    await this.call('DELETE', `/proxies/${proxy}/toxics/${name}`)
  }

  /** A disabled proxy closes its connections and refuses new ones. */
  async setEnabled(proxy: string, enabled: boolean): Promise<void> {
    await this.call('POST', `/proxies/${proxy}`, { enabled })
  }

  /** Every toxic removed and every proxy enabled: what each drill restores, and checks before it starts. */
  async reset(): Promise<void> {
    await this.call('POST', '/reset')
  }

  async toxics(proxy: string): Promise<Toxic[]> {
    return (await this.call('GET', `/proxies/${proxy}/toxics`)) as Toxic[]
  }
}
