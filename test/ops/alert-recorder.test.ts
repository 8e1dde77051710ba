// The alert recorder compose runs behind Alertmanager's webhooks: what it is sent, it lists.
import t from 'tap'
import { spawn } from 'node:child_process'
import { resolve } from 'node:path'
import { freePort } from '../../ops/lib/net.ts'
import { eventually } from '../helpers/service.ts'

const ROOT = resolve(import.meta.dirname, '../..')

void t.test('when Alertmanager posts a notification, then GET / lists it, and a body that is not JSON is a 400', async (t) => {
  const port = await freePort()
  const child = spawn(process.execPath, ['ops/alert-recorder.ts'], {
    cwd: ROOT,
    env: { ...process.env, PORT: String(port) },
    stdio: 'ignore',
  })
  t.teardown(() => void child.kill())
  const url = `http://127.0.0.1:${port}/`
  t.ok(await eventually(async () => (await fetch(url).catch(() => undefined))?.ok === true, 10_000), 'the recorder answers')
  t.same(await (await fetch(url)).json(), [], 'nothing received yet')
  // The shape of Alertmanager's webhook payload (https://prometheus.io/docs/alerting/latest/configuration/#webhook_config).
  const notification = {
    version: '4',
    status: 'firing',
    receiver: 'page',
    alerts: [{ status: 'firing', labels: { alertname: 'RedisDown' } }],
  }
  const post = await fetch(url, { method: 'POST', body: JSON.stringify(notification), headers: { 'content-type': 'application/json' } })
  t.equal(post.status, 200)
  const got = (await (await fetch(url)).json()) as (typeof notification & { at: string })[]
  t.equal(got.length, 1)
  t.match(got[0], { status: 'firing', receiver: 'page', alerts: [{ labels: { alertname: 'RedisDown' } }] })
  t.ok(Date.parse(got[0]!.at), 'with the time it arrived')
  const bad = await fetch(url, { method: 'POST', body: 'not json' })
  t.equal(bad.status, 400)
  t.match(await bad.json(), { status: 400, detail: /body/ })
})
